"""Tell a key's webhook URL when its batch ends, signed, retried with backoff.

The body is `{"type": "batch.completed", "data": {"id": "batch_…"}}`; the
`Webhook-Signature` header is `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>"
with the key's webhook secret>`, so a receiver can check both origin and
freshness. Deliveries run on the control cluster and never hold up a batch.
"""

import hashlib
import hmac
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from batches.models import Batch, WebhookDelivery
from batches.pipeline import enqueue

logger = logging.getLogger(__name__)

EVENTS: dict[str, str] = {
    Batch.Status.COMPLETED: "batch.completed",
    Batch.Status.FAILED: "batch.failed",
    Batch.Status.EXPIRED: "batch.expired",
    Batch.Status.CANCELLED: "batch.cancelled",
}
# Seconds before attempt n+1 (the last repeats): about 9 hours in all.
BACKOFF = [10, 30, 120, 600, 1800, 3600, 3 * 3600]


def notify_batch_ended(*, batch_id: int) -> None:
    """Queue the webhook for a batch that just reached a terminal status.

    Call inside the transaction that ended it: the delivery is enqueued on commit.
    """
    batch = Batch.objects.select_related("api_key").get(pk=batch_id)
    event = EVENTS.get(batch.status)
    key = batch.api_key
    if event is None or key is None or not key.webhook_url:
        return
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                batch=batch,
                api_key=key,
                event=event,
                url=key.webhook_url,
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        return  # already queued for this event
    enqueue.webhook(delivery.pk)


def loggable_url(url: str) -> str:
    """`scheme://host[:port]/path` of a webhook URL: what logs and stored errors show.

    A receiver may take a password in the URL (`https://user:pass@…`) or a
    token in its query string (`?key=…`); neither may reach a log line, the
    journal or the admin, which keep what they are given far longer and show
    it far wider than the key's own settings.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


def _without_url_secrets(text: str, url: str) -> str:
    """`text` (an HTTP client's error) with the URL's secrets, wherever quoted, replaced."""
    text = text.replace(url, loggable_url(url))
    try:
        parts = urlsplit(url)
        secrets = [parts.password, parts.username, parts.query]
    except ValueError:
        secrets = []
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def delivery_attempt(*, delivery_id: int) -> bool:
    """Try one delivery now; on failure schedule the next try. Returns success."""
    now = timezone.now()
    # Claim the attempt, so the task and the reconciler never send it twice.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, delivered_at__isnull=True, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3))
    if not claimed:
        return False
    delivery = WebhookDelivery.objects.select_related("batch", "api_key").get(pk=delivery_id)
    body = orjson.dumps({"type": delivery.event, "data": {"id": delivery.batch.public_id}})
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Webhook-Id": f"whd_{delivery.pk}",
        "Webhook-Signature": signature(delivery.api_key.webhook_secret, timestamp, body),
        "User-Agent": "batchserver-webhooks",
    }
    error = ""
    try:
        response = httpx.post(
            delivery.url, content=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS
        )
        if 200 <= response.status_code < 300:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                attempts=delivery.attempts + 1, delivered_at=timezone.now(), last_error=""
            )
            return True
        error = f"HTTP {response.status_code}"
    except (httpx.HTTPError, httpx.InvalidURL) as failure:
        error = _without_url_secrets(f"{type(failure).__name__}: {failure}", delivery.url)
    attempts = delivery.attempts + 1
    retry = attempts < settings.WEBHOOK_MAX_ATTEMPTS
    delay = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts,
        last_error=error[:1000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay) if retry else None,
    )
    logger.warning(
        "Webhook %s to %s failed (attempt %d): %s",
        delivery.event,
        loggable_url(delivery.url),
        attempts,
        error,
    )
    return False


def deliveries_due() -> list[int]:
    return list(
        WebhookDelivery.objects.filter(
            delivered_at__isnull=True, next_attempt_at__lte=timezone.now()
        ).values_list("pk", flat=True)[:200]
    )
