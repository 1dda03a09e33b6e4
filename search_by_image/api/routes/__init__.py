"""The API's routers: each raises domain errors (search_by_image.errors); the app's one handler
turns them into HTTP answers."""
