"""Spatio-temporal action detection, AVA-style (issue #21)."""
