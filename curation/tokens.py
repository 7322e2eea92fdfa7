"""Reviewer tokens: the curation API's bearer secrets (`rt-bs-…`), one reviewer each.

A token is created once (its raw value is returned to the caller, never
stored: only its SHA-256 is kept), used as `Authorization: Bearer rt-bs-…` on
the viewer's port, /api/v1/, and revoked. Batch API keys (`sk-bs-…`) open
nothing there, and reviewer tokens open nothing on /v1: each surface looks
only in its own table.
"""

import hmac
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import authentication, exceptions

from batches.models import ApiKey
from batches.throttling import SharedRateThrottle
from core.bearer import masked, new_secret, secret_hash
from curation.models import ReviewerToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Recording every use would turn each claim into a second write; a minute is
# precise enough to tell which tokens are alive.
LAST_USED_RESOLUTION = timedelta(minutes=1)
HEADER_HINT = f"Authorization: Bearer {ReviewerToken.PREFIX}…"


def token_create(*, user: "User", name: str = "") -> tuple[ReviewerToken, str]:
    """A new token for `user`, returned with its raw value, which is never stored."""
    raw = new_secret(ReviewerToken.PREFIX)
    token = ReviewerToken.objects.create(
        user=user, name=name[:100], key_hash=secret_hash(raw), hint=raw[-4:]
    )
    return token, raw


def tokens_revoke(tokens: QuerySet[ReviewerToken]) -> int:
    """Revoke the tokens at once (their next request is 401); return how many were live."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


class ReviewerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rt-bs-…`, looked up by the token's SHA-256.

    The only authentication of the curation API: a session cookie is not read
    there, so a logged-in browser without a token is 401 like anyone else.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"Malformed Authorization header; send {HEADER_HINT}"
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_incorrect_token_message("")) from None
        if raw.startswith(ApiKey.PREFIX):
            raise exceptions.AuthenticationFailed(
                f"A batch API key ({masked(raw)}) does not open the curation API; "
                f"send a reviewer token: {HEADER_HINT}"
            )
        digest = secret_hash(raw)
        token = (
            ReviewerToken.objects.select_related("user")
            .filter(key_hash=digest, revoked_at__isnull=True)
            .first()
        )
        # The lookup is by hash, so its timing says nothing of the token; compare
        # in constant time all the same, in case a backend ever matches loosely.
        if (
            token is None
            or not hmac.compare_digest(token.key_hash, digest)
            or not token.user.is_active
        ):
            raise exceptions.AuthenticationFailed(_incorrect_token_message(raw))
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ReviewerToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="curation"'


def _incorrect_token_message(raw: str) -> str:
    return (
        f"Incorrect, revoked or unknown reviewer token provided: {masked(raw)}. Send {HEADER_HINT}"
    )


class ReviewerTokenRateThrottle(SharedRateThrottle):
    """CURATION_RATE_LIMIT requests per reviewer token."""

    scope = "curation"

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ReviewerToken):
            return None
        return f"curation-rate:{request.auth.pk}"
