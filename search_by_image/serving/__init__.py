"""Collections in memory answering searches and live writes; the one `search` call."""
