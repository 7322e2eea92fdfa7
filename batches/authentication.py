import hmac
from datetime import timedelta

from django.db import models
from django.utils import timezone
from rest_framework import authentication, exceptions

from batches.models import ApiKey
from core.bearer import masked, secret_hash

# Recording every use would turn each poll into a write; a minute is precise
# enough to tell which keys are alive.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class HashedBearerAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <secret>`, looked up by the secret's SHA-256 in
    `model`, a table of revocable secrets (key_hash, revoked_at, last_used_at)
    whose `owner_field` user must be active. Subclasses name the table and word
    the refusals."""

    model: type[models.Model]
    owner_field: str
    realm: str

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(self.malformed_message())
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(self.incorrect_message("")) from None
        self.check_kind(raw)

        digest = secret_hash(raw)
        row = (
            self.model.objects.select_related(self.owner_field)  # type: ignore[attr-defined]
            .filter(key_hash=digest, revoked_at__isnull=True)
            .first()
        )
        owner = getattr(row, self.owner_field, None)
        # The lookup is by hash, so its timing says nothing of the secret; compare
        # in constant time all the same, in case a backend ever matches loosely.
        if row is None or not hmac.compare_digest(row.key_hash, digest) or not owner.is_active:
            raise exceptions.AuthenticationFailed(self.incorrect_message(raw))

        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            self.model.objects.filter(pk=row.pk).update(last_used_at=now)  # type: ignore[attr-defined]
            row.last_used_at = now
        return owner, row

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'Bearer realm="{self.realm}"'

    def malformed_message(self) -> str:
        return "Malformed Authorization header."

    def incorrect_message(self, raw: str) -> str:
        raise NotImplementedError

    def check_kind(self, raw: str) -> None:
        """Refuse, with a message that says so, a secret of another surface."""


class ApiKeyAuthentication(HashedBearerAuthentication):
    """`Authorization: Bearer <key>`: an API key for /v1."""

    model = ApiKey
    owner_field = "owner"
    realm = "api"

    def incorrect_message(self, raw: str) -> str:
        return f"Incorrect API key provided: {masked(raw)}."
