import hashlib
import json
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.bearer import secret_hash


def _public_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def new_file_id() -> str:
    return _public_id("file-")


def new_batch_id() -> str:
    return _public_id("batch_")


class ApiKey(models.Model):
    """A bearer key for /v1. Only its SHA-256 is stored; the key is shown once.

    Keys are 256 random bits, so a fast hash is enough: there is nothing to
    brute-force, and lookups by hash stay an index probe.
    """

    PREFIX = "sk-bs-"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100, blank=True, help_text="What the key is for.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=16, editable=False, help_text="The key's last characters, to tell keys apart."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Revoked keys stop working.")
    webhook_url = models.URLField(
        blank=True, help_text="Told (POST) when a batch made with this key ends."
    )
    webhook_secret = models.CharField(
        max_length=64, blank=True, editable=False, help_text="Signs webhook bodies (HMAC-SHA256)."
    )

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name or 'key'} …{self.hint} ({self.owner})"

    @staticmethod
    def hash(raw_key: str) -> str:
        return secret_hash(raw_key)


class FilePurpose(models.TextChoices):
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


class File(models.Model):
    Purpose = FilePurpose

    public_id = models.CharField(max_length=40, unique=True, default=new_file_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    filename = models.CharField(max_length=255, help_text="As sent by the client; never a path.")
    bytes = models.BigIntegerField()
    content = models.FileField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Deleted through the API: content removed, row kept."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(purpose__in=FilePurpose.values),
                name="batches_file_purpose_valid",
            ),
        ]
        indexes = [
            # selectors.files_list(): the owner's live files, newest first.
            models.Index(
                fields=["owner", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="batches_file_owner_live",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.filename})"


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class BatchEndpoint(models.TextChoices):
    CHAT_COMPLETIONS = "/v1/chat/completions"
    COMPLETIONS = "/v1/completions"


class Batch(models.Model):
    Status = BatchStatus
    Endpoint = BatchEndpoint

    TERMINAL_STATUSES = (Status.FAILED, Status.COMPLETED, Status.EXPIRED, Status.CANCELLED)

    public_id = models.CharField(max_length=40, unique=True, default=new_batch_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    endpoint = models.CharField(max_length=40, choices=Endpoint.choices)
    completion_window = models.CharField(max_length=8, default="24h")
    input_file = models.ForeignKey(
        File,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty only for results imported without their input file.",
    )
    output_file = models.ForeignKey(
        File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_file = models.ForeignKey(
        File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    output_expires_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds the output and error files are kept."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.VALIDATING)
    model = models.CharField(max_length=200, blank=True, help_text="Set from the input file.")
    metadata = models.JSONField(null=True, blank=True)
    errors = models.JSONField(
        null=True, blank=True, help_text="Validation errors: code, message, param, line."
    )

    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    finalize_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Set once, by whoever enqueued finalization."
    )
    validation_queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When validation was last queued (the reconciler requeues).",
    )
    ending = models.CharField(
        max_length=12,
        choices=[("completed", "completed"), ("expired", "expired")],
        default="completed",
        help_text="What a finalizing batch becomes: completed, or expired past its window.",
    )
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The key that created it (for webhooks).",
    )
    priority = models.SmallIntegerField(
        default=0, help_text="From metadata 'priority'; higher first."
    )
    last_served_at = models.DateTimeField(
        null=True, blank=True, help_text="When an engine last took one of its chunks (fairness)."
    )

    total_requests = models.PositiveIntegerField(default=0)
    completed_requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "batches"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=BatchStatus.values),
                name="batches_batch_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(endpoint__in=BatchEndpoint.values),
                name="batches_batch_endpoint_valid",
            ),
            models.CheckConstraint(
                condition=Q(ending__in=["completed", "expired"]), name="batches_batch_ending_valid"
            ),
        ]
        indexes = [
            # selectors.batches_list(): the owner's batches, newest first.
            models.Index(fields=["owner", "-id"], name="batches_batch_owner"),
            models.Index(fields=["status"], name="batches_batch_status"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class Chunk(models.Model):
    """A contiguous range of a batch's lines that one engine task runs.

    The lease (who, until when) is renewed while the chunk runs, so a chunk whose
    worker died can be told apart from one that is merely slow.
    """

    Status = ChunkStatus

    OPEN_STATUSES = (Status.PENDING, Status.RUNNING)

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField()
    last_line = models.PositiveIntegerField()
    size = models.PositiveIntegerField(default=0, help_text="Requests in the chunk.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    leased_by = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="batches_chunk_unique_index"),
            models.CheckConstraint(
                condition=Q(status__in=ChunkStatus.values),
                name="batches_chunk_status_valid",
            ),
        ]
        indexes = [
            # request_finalize(): "does this batch still have open chunks?"
            models.Index(
                fields=["batch"],
                condition=Q(status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]),
                name="batches_chunk_open",
            ),
            # The dashboard's throughput chart: chunks finished lately.
            models.Index(fields=["finished_at"], name="batches_chunk_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.batch} chunk {self.index} (lines {self.first_line}-{self.last_line})"


class RequestStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Request(models.Model):
    """One input line: the unit of execution, and later of curation."""

    Status = RequestStatus

    CUSTOM_ID_MAX_LENGTH = 512

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="requests")
    line = models.PositiveIntegerField(help_text="1-based line number in the input file.")
    custom_id = models.CharField(max_length=CUSTOM_ID_MAX_LENGTH)
    body = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(
        null=True, blank=True, help_text="The response body: a completion, or an error object."
    )
    error = models.JSONField(
        null=True, blank=True, help_text="Why the request has no response (code, message)."
    )
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "line"], name="batches_request_unique_line"),
            models.UniqueConstraint(
                fields=["batch", "custom_id"], name="batches_request_unique_custom_id"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RequestStatus.values),
                name="batches_request_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["batch", "status"], name="batches_request_status"),
            # The results table sorted by a column (curation.selectors.results_page):
            # keyset pages walk (column, id) from the cursor, so a deep page costs
            # what the first does, and rows without a value are an IS NULL range.
            models.Index(fields=["completion_tokens", "id"], name="batches_request_tokens"),
            models.Index(fields=["latency_ms", "id"], name="batches_request_latency"),
            models.Index(fields=["finished_at", "id"], name="batches_request_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id}"

    @property
    def messages(self) -> list[dict]:
        """The conversation sent, as chat messages (a completions prompt is one user turn).

        As stored: content may be a string, a list of parts or anything else. An
        element that is not an object is kept as a message without a role, so
        what was sent is never hidden (exports then skip the row, with a reason).
        """
        body = self.body if isinstance(self.body, dict) else {}
        messages = body.get("messages")
        if isinstance(messages, list):
            return [m if isinstance(m, dict) else {"content": m} for m in messages]
        if "prompt" in body:
            return [{"role": "user", "content": body["prompt"]}]
        return []

    @property
    def transcript(self) -> list[dict]:
        """The messages as the pages show them: {"role", "content"}, both plain text.

        Text parts become their text and tool calls a line each, whatever the
        stored body holds.
        """
        turns = []
        for message in self.messages:
            role = message.get("role")
            if not isinstance(role, str):
                role = "(no role)" if role is None else as_text(role)
            turns.append({"role": role, "content": _turn_text(message)})
        return turns

    @property
    def prompt_text(self) -> str:
        """The last user turn: what tells one request of a batch from another."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message.get("content"))
        return ""

    @property
    def response_text(self) -> str:
        """The first choice's text (and tool calls), or the error message when the
        request failed; whatever the stored response holds, as plain text."""
        response = self.response
        if response is None:
            return ""
        if not isinstance(response, dict):
            return as_text(response)
        error = response.get("error")
        if error is not None:
            return message_text(error.get("message") if isinstance(error, dict) else error)
        choice = self._first_choice()
        if choice is None:
            return ""
        if not isinstance(choice, dict):
            return as_text(choice)
        if "message" in choice:
            message = choice["message"]
            return _turn_text(message) if isinstance(message, dict) else message_text(message)
        return message_text(choice.get("text"))

    @property
    def finish_reason(self) -> str | None:
        """Why the stored answer ended ("stop", "length", …); None if it does not say."""
        choice = self._first_choice()
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        return reason if isinstance(reason, str) else None

    @property
    def was_cut_off(self) -> bool:
        """The answer stopped at max_tokens (finish_reason "length"), not by itself:
        worth a look before it becomes training data."""
        return self.finish_reason == "length"

    def _first_choice(self):
        """The stored response's first choice, whatever its type; None if it has none."""
        response = self.response
        choices = response.get("choices") if isinstance(response, dict) else None
        return choices[0] if isinstance(choices, list) and choices else None

    @property
    def prompt_excerpt(self) -> str:
        """The prompt cut to a table cell's length, however long the stored text."""
        return excerpt(self.prompt_text)

    @property
    def response_excerpt(self) -> str:
        return excerpt(self.response_text)

    @property
    def generation_parameters(self) -> dict:
        """The body without the prompt: sampling parameters and the like."""
        if not isinstance(self.body, dict):
            return {}
        return {k: v for k, v in self.body.items() if k not in ("messages", "prompt", "model")}

    @property
    def parameter_lines(self) -> list[tuple[str, str]]:
        """The generation parameters as (name, JSON text) pairs, for pages: a list,
        so that a body key such as "items" cannot shadow a dict method in a template."""
        return [(key, as_text(value)) for key, value in self.generation_parameters.items()]

    @staticmethod
    def line_ids(batch_public_id: str, line: int) -> tuple[str, str]:
        """The output line's `id` and `request_id`, derived so they never change."""
        digest = hashlib.sha256(f"{batch_public_id}:{line}".encode()).hexdigest()
        return f"batch_req_{digest[:24]}", f"req_{digest[24:48]}"


# Table cells show this many characters of a prompt or response.
EXCERPT_LENGTH = 140


def message_text(content) -> str:
    """Message content as plain text, whatever a stored body holds.

    A string is itself; a list of parts is each part's text, one per line (a
    non-text part is named, e.g. `[image_url]`); anything else is its JSON.
    Never raises: the viewer, the admin and the CSV export read stored bodies
    through here, and one odd body must not break a page. (The training
    formats read content strictly instead: exports/formats.py.)
    """
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and any(isinstance(p, str | dict) for p in content):
        return "\n".join(_part_text(part) for part in content)
    return as_text(content)  # a number, an object, or a list of token ids


def _part_text(part) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        if "text" in part:
            text = part["text"]
            return text if isinstance(text, str) else as_text(text)
        if isinstance(part.get("type"), str):
            return f"[{part['type']}]"
    return as_text(part)


def _turn_text(message: dict) -> str:
    """A message's content and its tool calls (content is often null beside them)."""
    text = message_text(message.get("content"))
    if message.get("tool_calls") is None:
        return text
    calls = tool_calls_text(message["tool_calls"])
    return f"{text}\n{calls}" if text else calls


def tool_calls_text(calls) -> str:
    """An assistant message's tool calls, one `→ name(arguments)` line each."""
    if not isinstance(calls, list):
        return f"→ {as_text(calls)}"
    lines = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            arguments = function.get("arguments")
            arguments = arguments if isinstance(arguments, str) else as_text(arguments)
            lines.append(f"→ {function['name']}({arguments})")
        else:
            lines.append(f"→ {as_text(call)}")
    return "\n".join(lines)


def excerpt(text: str, length: int = EXCERPT_LENGTH) -> str:
    """The first `length` characters, with an ellipsis when there is more."""
    return text if len(text) <= length else text[: length - 1] + "…"


def as_text(value) -> str:
    """A JSON value as compact JSON text (strings as they are), never a Python repr."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


class IdempotencyKey(models.Model):
    """A create request sent with an Idempotency-Key header, and its first answer.

    The same key with the same body gets that answer again, never a second
    object; the same key with another body is refused.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=40, help_text="e.g. POST /v1/batches")
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "endpoint", "key"], name="batches_idempotencykey_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key}"


class WebhookDelivery(models.Model):
    """One event to POST to a key's webhook URL, retried with backoff until it lands."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="webhook_deliveries")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=30, help_text="batch.completed, batch.failed, ...")
    url = models.URLField()
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "event"], name="batches_webhook_once_per_event"
            ),
        ]
        indexes = [
            # The reconciler's "deliveries due": undelivered, by next attempt.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True),
                name="batches_webhook_due",
            ),
        ]

    def __str__(self) -> str:
        # Not the URL: it may hold a password (webhooks.loggable_url shows it safely).
        return f"{self.event} for {self.batch}"


class Heartbeat(models.Model):
    """A process's sign of life: the control cluster's reconciler and each engine
    worker beat every minute (engine workers also while they run chunks)."""

    name = models.CharField(
        max_length=200, unique=True, help_text="control, or engine:<host>:<pid>"
    )
    beat_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text="e.g. the loaded model")

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
