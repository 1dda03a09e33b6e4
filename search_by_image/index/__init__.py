"""Vectors to FAISS and back: the saved index files, the loaded store, whitening, the journal."""
