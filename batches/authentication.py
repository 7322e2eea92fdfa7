import hmac
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from batches.models import ApiKey
from core.bearer import masked

# Recording every use would turn each poll into a write; a minute is precise
# enough to tell which keys are alive.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, looked up by the key's SHA-256."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_incorrect_key_message("")) from None

        digest = ApiKey.hash(raw_key)
        api_key = (
            ApiKey.objects.select_related("owner")
            .filter(key_hash=digest, revoked_at__isnull=True)
            .first()
        )
        # The lookup is by hash, so key timing says nothing of the key; compare in
        # constant time all the same, in case a backend ever matches loosely.
        if (
            api_key is None
            or not hmac.compare_digest(api_key.key_hash, digest)
            or not api_key.owner.is_active
        ):
            raise exceptions.AuthenticationFailed(_incorrect_key_message(raw_key))

        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.owner, api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def _incorrect_key_message(raw_key: str) -> str:
    return f"Incorrect API key provided: {masked(raw_key)}."
