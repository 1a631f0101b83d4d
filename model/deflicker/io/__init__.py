"""Clips in and out: frame sources, video files, image sequences, atomic outputs."""
