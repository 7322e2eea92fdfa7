"""Run chunks of batches on the engine and record each result as it finishes.

Which chunk runs next is decided when an engine worker is free, not when the
batch was created: batches take turns (round-robin, higher priority first), so
a small batch behind a 50,000-line one starts within a chunk's time.

The engine keeps running while results are written: a single writer thread
flushes them to the database every FLUSH_SECONDS, renews the chunk's lease in
the same transaction, and reports whether the batch still runs. A request that
fails for a transient reason (engine error, worker death) is run again, up to
MAX_REQUEST_ATTEMPTS; one the engine rejects fails at once.

An attempt is charged to a request when the engine admits it (Engine.run's
`admit`), before it is sent: a worker that dies charges the few requests its
engine held, never the rest of the chunk. When the engine raises while it
steps, the requests it held run again in halves (see _run_requests), so the
one that fails alone gets the engine's error and the others their answers.
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
from batches.engines.base import (
    EngineDead,
    EngineError,
    EngineRequest,
    EngineResult,
    engine_error_result,
)
from batches.jsonl import without_nul
from batches.models import Batch, Chunk, Request
from batches.pipeline import enqueue, heartbeats
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


def leases_renew() -> int:
    """Renew the leases this process holds; its heartbeat thread calls this
    (batches.pipeline.workers). A lease then lapses when its process stops
    beating, never because one engine step or one request took long."""
    return Chunk.objects.filter(
        status=Chunk.Status.RUNNING, leased_by=heartbeats.worker_id()
    ).update(lease_expires_at=timezone.now() + lease())


# Set when this worker's cluster stops (batches.pipeline.workers): the running
# chunk stops at the next engine step and goes back to pending, and no other
# chunk starts here.
_handing_back = False


def hand_back() -> None:
    """Give the running chunk back and take no more (called from a signal handler)."""
    global _handing_back
    _handing_back = True


def chunk_run_next() -> Chunk | None:
    """Take the fairest runnable chunk and run it; None when there is none.

    The engine is loaded before the chunk is claimed, so loading a model (which
    can take minutes on a GPU) never eats into a lease.
    """
    if _handing_back:
        enqueue.engine_turns(1)  # this worker stops: the turn is for another one
        return None
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
        while not writer.stopped and not _handing_back:
            requests, writer.attempts_before = _pending_requests(chunk)
            if not requests:
                break
            _run_requests(engine, requests, writer)
            writer.flush()
        writer.close()
    except EngineDead:
        # Nothing more runs on this engine: the next chunk loads a new one.
        engines.unload(batch.model)
        writer.abandon()
        raise
    except BaseException:
        writer.abandon()
        raise

    if _handing_back and not writer.stopped:
        _give_back(chunk, writer)
        logger.info("%s: handed back after %d results (this worker stops)", chunk, writer.written)
        return
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


def _give_back(chunk: Chunk, writer: "ResultWriter") -> None:
    """The chunk goes back to pending with its lease cleared, and a turn is
    queued, so another worker resumes it at once. The requests the engine was
    running when it stopped are refunded their attempt: a stop is not their fault."""
    with transaction.atomic():
        given = Chunk.objects.filter(pk=chunk.pk, leased_by=heartbeats.worker_id()).update(
            status=Chunk.Status.PENDING, leased_by="", lease_expires_at=None
        )
        if given:
            Request.objects.filter(
                pk__in=set(writer.attempts) - writer.answered,
                status=Request.Status.PENDING,
                attempts__gt=0,
            ).update(attempts=F("attempts") - 1)
            enqueue.engine_turns(1)


def _run_requests(engine, requests: list[EngineRequest], writer: "ResultWriter") -> None:
    """One pass over the requests; when the engine raises, find the culprit.

    An engine that raises while it steps (EngineError) has dropped every
    request it held, and cannot tell which one caused it: those run again in
    halves (_isolate), under the attempt each was charged when admitted.
    Requests the engine had not admitted stay pending, uncharged, for the next
    pass. So an engine error fails only the request that fails alone, at once,
    with no lease to wait for, and the rest of the chunk goes on.
    """
    held: dict[int, EngineRequest] = {}  # admitted, no result yet
    by_key = {request.key: request for request in requests}

    def admit(keys: list[int]) -> None:
        writer.charge(keys)
        held.update((key, by_key[key]) for key in keys)

    try:
        for result in engine.run(requests, should_stop=writer.should_stop, admit=admit):
            held.pop(result.key, None)
            writer.add(result)
    except EngineError as error:
        if not held:
            raise  # no request to blame: the engine itself is broken
        logger.warning("The engine failed holding %d request(s): %s", len(held), error)
        _isolate(engine, sorted(held.values(), key=lambda r: r.key), writer)


def _isolate(engine, suspects: list[EngineRequest], writer: "ResultWriter") -> None:
    """Run the suspects in halves until each has an answer or has failed alone.

    A group that runs through is answered at once; one that raises is split in
    two, and a request that raises on its own gets the engine's error as its
    result, final. A single culprit among n costs about 2·log2(n) group runs,
    and a failure that needs several requests together (a step that holds too
    many of them) goes away as the groups shrink. The order is fixed (depth
    first, in key order), so the same input gives the same verdicts.
    """
    groups = [suspects]
    while groups and not writer.stopped:
        group = groups.pop()
        unanswered = {request.key: request for request in group}
        try:
            # No `admit`: the attempt each was charged when first admitted covers this run.
            for result in engine.run(group, should_stop=writer.should_stop):
                unanswered.pop(result.key, None)
                writer.add(result)
        except EngineError as error:
            rest = sorted(unanswered.values(), key=lambda r: r.key)
            if len(group) == 1:
                logger.warning("Request %s fails alone in the engine: %s", group[0].key, error)
                writer.add(engine_error_result(group[0].key, error))
            else:
                half = (len(rest) + 1) // 2
                groups += [part for part in (rest[half:], rest[:half]) if part]


def _pending_requests(chunk: Chunk) -> tuple[list[EngineRequest], dict[int, int]]:
    """The chunk's requests still to run, in line order, and their attempts so far.

    One already charged MAX_REQUEST_ATTEMPTS attempts without an answer (its
    worker kept dying, or the engine kept failing) goes to the error file
    instead. The others are charged when the engine admits them.
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
    endpoint = chunk.batch.endpoint
    rows = pending.order_by("line").values_list("pk", "body", "attempts")
    requests = [EngineRequest(key=pk, endpoint=endpoint, body=body) for pk, body, _ in rows]
    return requests, {pk: attempts for pk, _, attempts in rows}


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
        # Requests charged an attempt in this run (admitted), and their attempts
        # since; attempts_before holds the current pass's counts before that.
        self.attempts: dict[int, int] = {}
        self.attempts_before: dict[int, int] = {}
        self.answered: set[int] = set()  # requests the engine gave a result for
        self._buffer: list[EngineResult] = []
        self._last_flush = time.monotonic()
        self._last_beat = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="result-writer")
        self._in_flight: Future | None = None

    def add(self, result: EngineResult) -> None:
        self._buffer.append(result)
        self.answered.add(result.key)
        due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due or len(self._buffer) >= FLUSH_MAX_RESULTS:
            self._flush_async()

    def charge(self, keys: list[int]) -> None:
        """Charge an attempt to each of these requests, before the engine takes them.

        Stored (committed) before it returns, so that a worker that dies while
        running them has charged them, and only them. It goes through the
        writer thread, after the flush in flight, to keep one writer.
        """
        self._wait()
        self._executor.submit(self._charge, keys).result()
        for key in keys:
            self.attempts[key] = self.attempts_before[key] + 1

    def _charge(self, keys: list[int]) -> None:
        held = Chunk.objects.filter(pk=self.chunk.pk, leased_by=heartbeats.worker_id())
        with transaction.atomic():
            if not held.exists():
                raise LeaseLost(f"{self.chunk} was taken over by another worker")
            Request.objects.filter(pk__in=keys).update(attempts=F("attempts") + 1)

    def should_stop(self) -> bool:
        """Polled by the engine between steps; also keeps slow chunks flushing."""
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self._flush_async()
        return self.stopped or _handing_back

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
