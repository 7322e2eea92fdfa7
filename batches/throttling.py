"""Per-key rate limits on the create endpoints (uploads and batches)."""

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle


class CreateRateThrottle(SimpleRateThrottle):
    """CREATE_RATE_LIMIT creates per API key, counted in the database cache so
    every API process and host shares one count. Over it: 429 with Retry-After."""

    scope = "create"

    @property
    def cache(self):
        return caches["throttle"]

    def get_rate(self) -> str:
        # Read per request, not at import, so the limit follows the settings.
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is None:
            return None
        return f"create-rate:{request.auth.pk}"
