"""Route handlers, grouped by resource; ROUTES is what the app serves."""

from encounters_service.api import monitoring

ROUTES = [*monitoring.ROUTES]
