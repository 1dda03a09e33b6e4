"""Measuring retrieval through the product; never imported by serving."""
