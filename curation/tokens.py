"""Reviewer tokens: the curation API's bearer secrets (`rt-bs-…`), one reviewer each.

A token is created once (its raw value is returned to the caller, never
stored: only its SHA-256 is kept), used as `Authorization: Bearer rt-bs-…` on
the viewer's port, /api/v1/, and revoked. Batch API keys (`sk-bs-…`) open
nothing there, and reviewer tokens open nothing on /v1: each surface looks
only in its own table.
"""

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import exceptions

from batches.authentication import HashedBearerAuthentication
from batches.models import ApiKey
from batches.throttling import SharedRateThrottle
from core.bearer import masked, new_secret, secret_hash
from curation.models import ReviewerToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

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


class ReviewerTokenAuthentication(HashedBearerAuthentication):
    """`Authorization: Bearer rt-bs-…`: a reviewer token.

    The only authentication of the curation API: a session cookie is not read
    there, so a logged-in browser without a token is 401 like anyone else.
    """

    model = ReviewerToken
    owner_field = "user"
    realm = "curation"

    def malformed_message(self) -> str:
        return f"Malformed Authorization header; send {HEADER_HINT}"

    def incorrect_message(self, raw: str) -> str:
        return (
            f"Incorrect, revoked or unknown reviewer token provided: {masked(raw)}. "
            f"Send {HEADER_HINT}"
        )

    def check_kind(self, raw: str) -> None:
        if raw.startswith(ApiKey.PREFIX):
            raise exceptions.AuthenticationFailed(
                f"A batch API key ({masked(raw)}) does not open the curation API; "
                f"send a reviewer token: {HEADER_HINT}"
            )


class ReviewerTokenRateThrottle(SharedRateThrottle):
    """CURATION_RATE_LIMIT requests per reviewer token."""

    scope = "curation"

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ReviewerToken):
            return None
        return f"curation-rate:{request.auth.pk}"
