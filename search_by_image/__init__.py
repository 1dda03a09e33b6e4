"""search-by-image: content-based image retrieval with CNN descriptors and FAISS."""

__version__ = "1.0.0"
