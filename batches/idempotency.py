"""Idempotency-Key for create requests: a retried POST returns the first answer.

Aris's SDK retries a POST that timed out; without this, a batch created on the
first try and again on the retry would run twice. Same key and same body: the
stored answer (with `Idempotent-Replayed: true`). Same key, other body: 422.
Same key while the first is still being answered: 409. Errors are not stored,
so a request that failed can be retried with its key.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from batches.models import IdempotencyKey
from core.exceptions import ApplicationError, Conflict

HEADER = "Idempotency-Key"
# Visible ASCII, spaces only inside: what survives every proxy unchanged.
KEY_PATTERN = r"^[!-~](?:[ -~]{0,253}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)
# A first request that never answered (its server died) stops blocking the key.
ABANDONED_AFTER = timedelta(minutes=5)


def body_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def json_hash(data) -> str:
    # The standard library, not orjson: a body may hold integers past 64 bits.
    return body_hash(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def idempotent(request, *, endpoint: str, fingerprint: Callable[[], str], create) -> Response:
    """Run `create()` once per (owner, endpoint, key); replay its answer after."""
    key = request.headers.get(HEADER)
    if key is None:
        return create()
    if not _KEY.match(key):
        raise ApplicationError(
            f"{HEADER} must be 1-255 visible ASCII characters (spaces only inside).",
            param=HEADER,
            code="invalid_value",
        )
    owner, now, digest = request.user, timezone.now(), fingerprint()
    IdempotencyKey.objects.filter(
        owner=owner, created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    ).delete()
    IdempotencyKey.objects.filter(
        owner=owner,
        endpoint=endpoint,
        key=key,
        status_code__isnull=True,
        created_at__lt=now - ABANDONED_AFTER,
    ).delete()
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(
                owner=owner, endpoint=endpoint, key=key, body_hash=digest
            )
    except IntegrityError:
        return _replay(IdempotencyKey.objects.get(owner=owner, endpoint=endpoint, key=key), digest)
    try:
        response = create()
    except BaseException:
        record.delete()
        raise
    IdempotencyKey.objects.filter(pk=record.pk).update(
        status_code=response.status_code, response=response.data
    )
    return response


def _replay(record: IdempotencyKey, digest: str) -> Response:
    if record.body_hash != digest:
        raise ApplicationError(
            f"This {HEADER} was used with a different request body.",
            param=HEADER,
            code="idempotency_key_reused",
            status=422,
        )
    if record.status_code is None:
        raise Conflict(
            f"A request with this {HEADER} is still being processed; retry shortly.",
            param=HEADER,
            code="idempotency_key_in_use",
        )
    return Response(
        record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"}
    )
