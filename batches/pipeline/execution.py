"""Run chunks of batches on the engine and record each result as it finishes.

Which chunk runs next is decided when an engine worker is free, not when the
batch was created: batches take turns (round-robin, higher priority first), so
a small batch behind a 50,000-line one starts within a chunk's time.

The engine keeps running while results are written: a single writer thread
flushes them to the database every FLUSH_SECONDS, renews the chunk's lease in
the same transaction, and reports whether the batch still runs. A request that
fails for a transient reason (engine error, worker death) is run again, up to
MAX_REQUEST_ATTEMPTS; one the engine rejects fails at once.
"""

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import cast

import orjson
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Field
from django.utils import timezone

from batches import engines
from batches.engines.base import EngineRequest, EngineResult
from batches.jsonl import without_nul
from batches.models import Batch, Chunk, Request
from batches.pipeline import heartbeats
from batches.services import request_finalize
from core.exceptions import error_body

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_MAX_RESULTS = 512
HEARTBEAT_SECONDS = 30
FAIR_ORDER = (F("batch__priority").desc(), F("batch__last_served_at").asc(nulls_first=True))

_RESULT_FIELDS = [
    "status",
    "status_code",
    "response",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "finished_at",
]
_UPDATE_RESULT_SQL = "UPDATE {table} SET {assignments} WHERE {pk} = %s".format(
    table=Request._meta.db_table,
    # Concrete fields, never relations seen from the other side.
    assignments=", ".join(
        f"{cast(Field, Request._meta.get_field(f)).column} = %s" for f in _RESULT_FIELDS
    ),
    pk=Request._meta.pk.column,
)


class LeaseLost(Exception):
    """Another worker owns the chunk now; stop without writing anything more."""


def lease() -> timedelta:
    return timedelta(seconds=settings.CHUNK_LEASE_SECONDS)


def chunk_run_next() -> Chunk | None:
    """Take the fairest runnable chunk and run it; None when there is none.

    The engine is loaded before the chunk is claimed, so loading a model (which
    can take minutes on a GPU) never eats into a lease.
    """
    for _ in range(5):  # another worker may claim the pick first
        candidate = _fairest_pending_chunk()
        if candidate is None:
            return None
        engine = engines.get_engine(candidate.batch.model)
        chunk = _claim(Chunk.objects.filter(pk=candidate.pk))
        if chunk is not None:
            _run(chunk, engine)
            return chunk
    return None


def chunk_run(*, chunk_id: int) -> None:
    """Run this very chunk if it is pending (tests and operators; workers use chunk_run_next)."""
    batch = Batch.objects.filter(chunks=chunk_id).first()
    if batch is None:
        return
    engine = engines.get_engine(batch.model)
    chunk = _claim(Chunk.objects.filter(pk=chunk_id))
    if chunk is None:
        logger.info("Chunk %s is not runnable (taken, finished or cancelled)", chunk_id)
        return
    _run(chunk, engine)


def _fairest_pending_chunk() -> Chunk | None:
    """The next chunk by priority, then by the batch served least recently.

    A worker sticks to its loaded model while that model has work, unless
    another model's batch has priority or has waited longer than
    MODEL_SWITCH_AFTER_SECONDS: switching reloads the model.
    """
    pending = Chunk.objects.filter(
        status=Chunk.Status.PENDING, batch__status=Batch.Status.IN_PROGRESS
    ).select_related("batch")
    best = pending.order_by(*FAIR_ORDER, "batch_id", "index").first()
    loaded = engines.loaded_model()
    if best is None or loaded is None or best.batch.model == loaded:
        return best
    same = pending.filter(batch__model=loaded).order_by(*FAIR_ORDER, "batch_id", "index").first()
    if same is None or best.batch.priority > same.batch.priority:
        return best
    waiting_since = best.batch.last_served_at or best.batch.in_progress_at
    # A batch becomes in_progress in the same update that sets in_progress_at.
    assert waiting_since is not None
    waited = (timezone.now() - waiting_since).total_seconds()
    return best if waited > settings.MODEL_SWITCH_AFTER_SECONDS else same


def _claim(chunks) -> Chunk | None:
    """Lease one pending chunk of a running batch, and open an attempt on its requests."""
    now = timezone.now()
    with transaction.atomic():
        claimed = chunks.filter(
            status=Chunk.Status.PENDING, batch__status=Batch.Status.IN_PROGRESS
        ).update(
            status=Chunk.Status.RUNNING,
            leased_by=heartbeats.worker_id(),
            lease_expires_at=now + lease(),
            started_at=now,
            attempts=F("attempts") + 1,
        )
        if not claimed:
            return None
        chunk = chunks.select_related("batch").get()
        Batch.objects.filter(pk=chunk.batch_id).update(last_served_at=now)
    return chunk


def _run(chunk: Chunk, engine) -> None:
    batch = chunk.batch
    writer = ResultWriter(chunk)
    started = time.monotonic()
    try:
        while not writer.stopped:
            attempts = _start_attempt(chunk)
            if not attempts:
                break
            requests = [
                EngineRequest(key=pk, endpoint=batch.endpoint, body=body)
                for pk, body in Request.objects.filter(pk__in=attempts)
                .order_by("line")
                .values_list("pk", "body")
            ]
            writer.attempts = attempts
            for result in engine.run(requests, should_stop=writer.should_stop):
                writer.add(result)
            writer.flush()
        writer.close()
    except BaseException:
        writer.abandon()
        raise

    finished = Chunk.Status.CANCELLED if writer.stopped else Chunk.Status.DONE
    with transaction.atomic():
        closed = Chunk.objects.filter(pk=chunk.pk, leased_by=heartbeats.worker_id()).update(
            status=finished, finished_at=timezone.now(), lease_expires_at=None
        )
        if closed:
            request_finalize(batch_id=batch.pk)
    logger.info(
        "%s: %d results in %.1f s (%s)", chunk, writer.written, time.monotonic() - started, finished
    )


def _start_attempt(chunk: Chunk) -> dict[int, int]:
    """Open one more attempt on the chunk's pending requests: {request id: attempt}.

    A request already tried MAX_REQUEST_ATTEMPTS times (its worker kept dying,
    or the engine kept failing) goes to the error file instead.
    """
    pending = Request.objects.filter(
        batch_id=chunk.batch_id,
        line__gte=chunk.first_line,
        line__lte=chunk.last_line,
        status=Request.Status.PENDING,
    )
    limit = settings.MAX_REQUEST_ATTEMPTS
    with transaction.atomic():
        exhausted = list(pending.filter(attempts__gte=limit).values_list("pk", "error"))
        if exhausted:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            with connection.cursor() as cursor:
                cursor.executemany(
                    _UPDATE_RESULT_SQL,
                    [_row(_gave_up(pk, error, limit), now, final=True) for pk, error in exhausted],
                )
            Batch.objects.filter(pk=chunk.batch_id).update(
                failed_requests=F("failed_requests") + len(exhausted)
            )
        pending.update(attempts=F("attempts") + 1)
        return dict(pending.values_list("pk", "attempts"))


def _gave_up(pk: int, error: dict | None, attempts: int) -> EngineResult:
    reason = (error or {}).get("message", "the worker running it stopped")
    message = f"Gave up after {attempts} attempts: {reason}"
    return EngineResult(key=pk, status_code=500, body=error_body(message, type="server_error"))


class ResultWriter:
    """Buffers engine results and writes them from one background thread.

    At most one flush is in flight; the next waits for it, which bounds memory
    and keeps writes in order.
    """

    def __init__(self, chunk: Chunk):
        self.chunk = chunk
        self.stopped = False  # the batch is no longer running (cancelled or expired)
        self.written = 0
        self.attempts: dict[int, int] = {}
        self._buffer: list[EngineResult] = []
        self._last_flush = time.monotonic()
        self._last_beat = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="result-writer")
        self._in_flight: Future | None = None

    def add(self, result: EngineResult) -> None:
        self._buffer.append(result)
        due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due or len(self._buffer) >= FLUSH_MAX_RESULTS:
            self._flush_async()

    def should_stop(self) -> bool:
        """Polled by the engine between steps; also keeps slow chunks flushing."""
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self._flush_async()
        return self.stopped

    def flush(self) -> None:
        """Write everything buffered and wait for it."""
        self._flush_async()
        self._wait()

    def close(self) -> None:
        self.flush()
        self._executor.submit(connections.close_all).result()
        self._executor.shutdown()

    def abandon(self) -> None:
        """Stop without the final flush (the engine failed or the lease is lost)."""
        self._executor.submit(connections.close_all)
        self._executor.shutdown(wait=True, cancel_futures=False)

    def _flush_async(self) -> None:
        self._wait()
        self._last_flush = time.monotonic()
        results, self._buffer = self._buffer, []
        self._in_flight = self._executor.submit(self._write, results, dict(self.attempts))

    def _wait(self) -> None:
        if self._in_flight is not None:
            status = self._in_flight.result()  # re-raises LeaseLost and database errors
            self._in_flight = None
            if status != Batch.Status.IN_PROGRESS:
                self.stopped = True

    def _write(self, results: list[EngineResult], attempts: dict[int, int]) -> str:
        """Store results, renew the lease, count usage; return the batch status.

        One parameterised UPDATE per row through executemany: bulk_update's
        CASE expressions cost more Python than the engine can spare, since this
        thread shares the interpreter with the engine loop.
        """
        now = timezone.now()
        finished_at = connection.ops.adapt_datetimefield_value(now)
        limit = settings.MAX_REQUEST_ATTEMPTS
        rows, final = [], []
        for result in results:
            retry = result.transient and attempts.get(result.key, limit) < limit
            rows.append(_row(result, finished_at, final=not retry))
            if not retry:
                final.append(result)
        completed = sum(1 for r in final if r.ok)
        with transaction.atomic():
            renewed = Chunk.objects.filter(
                pk=self.chunk.pk, leased_by=heartbeats.worker_id()
            ).update(lease_expires_at=now + lease())
            if not renewed:
                raise LeaseLost(f"{self.chunk} was taken over by another worker")
            if rows:
                with connection.cursor() as cursor:
                    cursor.executemany(_UPDATE_RESULT_SQL, rows)
            if final:
                Batch.objects.filter(pk=self.chunk.batch_id).update(
                    completed_requests=F("completed_requests") + completed,
                    failed_requests=F("failed_requests") + len(final) - completed,
                    input_tokens=F("input_tokens") + sum(r.prompt_tokens for r in final),
                    cached_tokens=F("cached_tokens") + sum(r.cached_tokens for r in final),
                    output_tokens=F("output_tokens") + sum(r.completion_tokens for r in final),
                )
            status = Batch.objects.values_list("status", flat=True).get(pk=self.chunk.batch_id)
        if time.monotonic() - self._last_beat > HEARTBEAT_SECONDS:
            # A worker busy on a long chunk runs no heartbeat task: it beats here.
            heartbeats.engine_beat()
            self._last_beat = time.monotonic()
        self.written += len(final)
        return status


def _row(result: EngineResult, finished_at, *, final: bool) -> tuple:
    """Parameters for _UPDATE_RESULT_SQL, in _RESULT_FIELDS order.

    A transient failure that will be retried leaves the request pending, its
    error kept for the record (and for the message if it never succeeds).
    """
    if not final:
        error = {
            "status_code": result.status_code,
            "message": result.body.get("error", {}).get("message", "engine error"),
        }
        return (
            Request.Status.PENDING,
            None,
            None,
            orjson.dumps(error).decode(),
            None,
            None,
            None,
            None,
            None,
            result.key,
        )
    return (
        Request.Status.COMPLETED if result.ok else Request.Status.FAILED,
        result.status_code,
        orjson.dumps(without_nul(result.body)).decode(),
        None,
        result.prompt_tokens,
        result.completion_tokens,
        result.cached_tokens,
        result.latency_ms,
        finished_at,
        result.key,
    )
