"""Reusable layers: attention, tubelet embedding, transformer blocks, ..."""
