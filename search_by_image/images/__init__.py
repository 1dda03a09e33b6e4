"""Bytes to pixels: image formats, decoding within a budget, camera raw, capture times, regions."""
