"""Running the app in production: gunicorn's logging and the container checks."""
