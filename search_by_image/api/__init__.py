"""HTTP: the app, its routes, schemas, uploads, keys, limits, pages and presenters."""
