"""What a collection knows besides vectors: where it lives, metadata, filters, thumbnails."""
