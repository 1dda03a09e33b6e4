"""Vectors to FAISS and back: the saved index files, the loaded store and its live writes, whitening."""
