"""Helpers that make small stand-ins for real assets, for the tests and the quick starts.

:mod:`ai4rs.testing.tiny_clip` writes a randomly initialised CLIP text model and
tokenizer to a directory (the tests' ``tiny_clip_dir`` fixture, the open-vocabulary
quick start, and the analysis tools when no real CLIP is at hand).
"""
