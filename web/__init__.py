"""The Flask app: the search page and the JSON API over kb."""
