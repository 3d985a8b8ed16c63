"""Server-rendered pages beside the API: the customer portal (``web/portal.py``)."""
