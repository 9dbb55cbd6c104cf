"""A Python client for a running `kb serve` (kb/client/http.py): ``from kb.client import Client, ClientError``."""

from kb.client.http import Client, ClientError

__all__ = ["Client", "ClientError"]
