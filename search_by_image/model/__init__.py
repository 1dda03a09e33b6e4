"""Pixels to descriptors: backbones, preprocessing, the embedder and its runtimes, int8."""
