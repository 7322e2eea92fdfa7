"""Run one chunk of a batch on the engine and record each result as it finishes.

The engine keeps running while results are written: a single writer thread
flushes them to the database every FLUSH_SECONDS, renews the chunk's lease in
the same transaction, and reports whether the batch is being cancelled.
"""

import logging
import os
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import orjson
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from batches.engines import get_engine
from batches.engines.base import EngineRequest, EngineResult
from batches.models import Batch, Chunk, Request
from batches.services import request_finalize

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_MAX_RESULTS = 512
LEASE = timedelta(minutes=5)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

_RESULT_FIELDS = [
    "status",
    "status_code",
    "response",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "attempts",
    "finished_at",
]
_UPDATE_RESULT_SQL = "UPDATE {table} SET {assignments} WHERE {pk} = %s".format(
    table=Request._meta.db_table,
    assignments=", ".join(f"{Request._meta.get_field(f).column} = %s" for f in _RESULT_FIELDS),
    pk=Request._meta.pk.column,
)


class LeaseLost(Exception):
    """Another worker owns the chunk now; stop without writing anything more."""


def chunk_claim(*, chunk_id: int) -> Chunk | None:
    """Take the chunk if it is pending and its batch is running; None otherwise."""
    now = timezone.now()
    claimed = Chunk.objects.filter(
        pk=chunk_id,
        status=Chunk.Status.PENDING,
        batch__status=Batch.Status.IN_PROGRESS,
    ).update(
        status=Chunk.Status.RUNNING,
        leased_by=WORKER_ID,
        lease_expires_at=now + LEASE,
        started_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    return Chunk.objects.select_related("batch").get(pk=chunk_id)


def chunk_run(*, chunk_id: int) -> None:
    chunk = chunk_claim(chunk_id=chunk_id)
    if chunk is None:
        logger.info("Chunk %s is not runnable (taken, finished or cancelled)", chunk_id)
        return
    batch = chunk.batch
    requests = Request.objects.filter(
        batch=batch,
        line__gte=chunk.first_line,
        line__lte=chunk.last_line,
        status=Request.Status.PENDING,
    ).order_by("line")
    # A chunk is small enough to read at once, and no cursor stays open while
    # the writer thread updates the same rows.
    engine_requests = [
        EngineRequest(key=pk, endpoint=batch.endpoint, body=body)
        for pk, body in requests.values_list("pk", "body")
    ]

    engine = get_engine(batch.model)
    writer = ResultWriter(chunk)
    started = time.monotonic()
    try:
        for result in engine.run(engine_requests, should_stop=writer.should_stop):
            writer.add(result)
        writer.close()
    except BaseException:
        writer.abandon()
        raise

    finished = Chunk.Status.CANCELLED if writer.cancelled else Chunk.Status.DONE
    with transaction.atomic():
        closed = Chunk.objects.filter(pk=chunk.pk, leased_by=WORKER_ID).update(
            status=finished, finished_at=timezone.now(), lease_expires_at=None
        )
        if closed:
            request_finalize(batch_id=batch.pk)
    logger.info(
        "%s: %d results in %.1f s (%s)",
        chunk,
        writer.written,
        time.monotonic() - started,
        finished,
    )


class ResultWriter:
    """Buffers engine results and writes them from one background thread.

    At most one flush is in flight; the next waits for it, which bounds memory
    and keeps writes in order.
    """

    def __init__(self, chunk: Chunk):
        self.chunk = chunk
        self.cancelled = False
        self.written = 0
        self._buffer: list[EngineResult] = []
        self._last_flush = time.monotonic()
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
        return self.cancelled

    def close(self) -> None:
        self._flush_async()
        self._wait()
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
        self._in_flight = self._executor.submit(self._write, results)

    def _wait(self) -> None:
        if self._in_flight is not None:
            status = self._in_flight.result()  # re-raises LeaseLost and database errors
            self._in_flight = None
            if status == Batch.Status.CANCELLING:
                self.cancelled = True

    def _write(self, results: list[EngineResult]) -> str:
        """Store results, renew the lease, count usage; return the batch status.

        One parameterised UPDATE per row through executemany: bulk_update's
        CASE expressions cost more Python than the engine can spare, since this
        thread shares the interpreter with the engine loop.
        """
        now = timezone.now()
        finished_at = connection.ops.adapt_datetimefield_value(now)
        rows = [_row(result, finished_at) for result in results]
        completed = sum(1 for r in results if r.ok)
        with transaction.atomic():
            renewed = Chunk.objects.filter(pk=self.chunk.pk, leased_by=WORKER_ID).update(
                lease_expires_at=now + LEASE
            )
            if not renewed:
                raise LeaseLost(f"{self.chunk} was taken over by another worker")
            if rows:
                with connection.cursor() as cursor:
                    cursor.executemany(_UPDATE_RESULT_SQL, rows)
                Batch.objects.filter(pk=self.chunk.batch_id).update(
                    completed_requests=F("completed_requests") + completed,
                    failed_requests=F("failed_requests") + len(rows) - completed,
                    input_tokens=F("input_tokens") + sum(r.prompt_tokens for r in results),
                    cached_tokens=F("cached_tokens") + sum(r.cached_tokens for r in results),
                    output_tokens=F("output_tokens") + sum(r.completion_tokens for r in results),
                )
            status = Batch.objects.values_list("status", flat=True).get(pk=self.chunk.batch_id)
        self.written += len(rows)
        return status


def _row(result: EngineResult, finished_at) -> tuple:
    """Parameters for _UPDATE_RESULT_SQL, in _RESULT_FIELDS order."""
    return (
        Request.Status.COMPLETED if result.ok else Request.Status.FAILED,
        result.status_code,
        orjson.dumps(result.body).decode(),
        result.prompt_tokens,
        result.completion_tokens,
        result.cached_tokens,
        result.latency_ms,
        1,
        finished_at,
        result.key,
    )
