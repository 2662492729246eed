"""Audio-visual classification and synchronisation (issue #22): the
`audio_visual` task of the shared loop (task.py), its jitted steps
(train_step.py) and its in-memory batches (data.py)."""
