"""Audio: front end (STFT / iSTFT / log-mel) and metrics (SDR, SI-SDR, mAP)."""
