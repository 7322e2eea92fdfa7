"""Rate limits counted in the database cache, so every process and host shares
one count: per API key on the create endpoints (uploads and batches), and (in
curation.tokens) per reviewer token on the curation API."""

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle


class SharedRateThrottle(SimpleRateThrottle):
    """A rate from REST_FRAMEWORK's DEFAULT_THROTTLE_RATES[scope], counted in the
    database cache. Over it: 429 with Retry-After."""

    @property
    def cache(self):
        return caches["throttle"]

    def get_rate(self) -> str:
        # Read per request, not at import, so the limit follows the settings.
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]


class CreateRateThrottle(SharedRateThrottle):
    """CREATE_RATE_LIMIT creates per API key."""

    scope = "create"

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is None:
            return None
        return f"create-rate:{request.auth.pk}"
