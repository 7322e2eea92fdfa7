"""Who is alive: each worker process's identity and its sign of life.

Every django-q2 worker beats every BEAT_SECONDS from a thread
(batches.pipeline.workers), so a beat says "this process runs", whatever its
main thread is doing; an engine worker's beat also names the model it holds.
A worker that stops cleanly removes its row. Chunk leases name their holder
with the same identity, `host:pid`.

A beat counts while it is fresher than STALE and, when it comes from this
host, while its process still runs: a killed worker stops counting at once,
not after the window. /readyz (batches.health) reads the beats.
"""

import os
import socket
from datetime import datetime, timedelta

import psutil  # type: ignore[import-untyped]  # no stubs installed
from django.utils import timezone

from batches import engines
from batches.models import Heartbeat

BEAT_SECONDS = 10
# Three missed beats: a worker on another host (whose process this host cannot
# see) stops counting this long after its last one.
STALE = timedelta(seconds=3 * BEAT_SECONDS + 5)
CONTROL_PREFIX = "control:"
ENGINE_PREFIX = "engine:"
# psutil derives a process's start time from the boot time in whole seconds.
_CLOCK_SLACK = timedelta(seconds=2)


def worker_id() -> str:
    """This process, as chunk leases and heartbeats name it (computed per call:
    a module-level value would keep the pid of a process that forked)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(name: str, **details) -> None:
    Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "details": details}
    )


def control_beat() -> None:
    beat(f"{CONTROL_PREFIX}{worker_id()}")


def engine_beat() -> None:
    """This engine worker is alive, with the model it holds."""
    beat(f"{ENGINE_PREFIX}{worker_id()}", model=engines.loaded_model())


def forget() -> None:
    """This process stops: its beats no longer count (a clean stop, not a crash)."""
    Heartbeat.objects.filter(
        name__in=[f"{CONTROL_PREFIX}{worker_id()}", f"{ENGINE_PREFIX}{worker_id()}"]
    ).delete()


def process_alive(worker: str, *, since: datetime) -> bool:
    """Whether the process named `worker` (`host:pid`) may still run.

    A process of another host cannot be seen from here: True, and its lease or
    beat tells. On this host: whether that pid is a live process that already
    existed at `since` (a newer one merely reuses the pid).
    """
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= (since + _CLOCK_SLACK).timestamp()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # there, but not ours to inspect (another user's process)


def control_alive() -> bool:
    return any(_live(CONTROL_PREFIX))


def engine_models() -> list[str]:
    """The model of each live engine worker that holds one."""
    return [heartbeat.details["model"] for heartbeat in _live(ENGINE_PREFIX)]


def _live(prefix: str) -> list[Heartbeat]:
    fresh = Heartbeat.objects.filter(
        name__startswith=prefix, beat_at__gte=timezone.now() - STALE
    ).order_by("name")
    return [
        heartbeat
        for heartbeat in fresh
        if process_alive(heartbeat.name.removeprefix(prefix), since=heartbeat.beat_at)
        and (prefix != ENGINE_PREFIX or heartbeat.details.get("model"))
    ]
