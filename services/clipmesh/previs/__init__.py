"""Previs: turn a film script into scenes, shots and, later, a stitched previs cut."""
