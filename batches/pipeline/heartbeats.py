"""Who is alive: each worker process's identity and its sign of life.

The control cluster's reconciler and every engine worker beat once a minute
(engine workers also while they run chunks). Chunk leases name their holder
with the same identity. /readyz (batches.health) reads the beats.
"""

import os
import socket
from datetime import timedelta

from django.utils import timezone

from batches import engines
from batches.models import Heartbeat

# A beat older than this no longer counts as a live process.
STALE = timedelta(minutes=3)
CONTROL = "control"
ENGINE_PREFIX = "engine:"


def worker_id() -> str:
    """This process, as chunk leases and heartbeats name it (computed per call:
    a module-level value would keep the pid of a process that forked)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(name: str, **details) -> None:
    Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "details": details}
    )


def control_beat() -> None:
    beat(CONTROL)


def engine_beat() -> None:
    """This engine worker is alive, with the model it holds."""
    beat(f"{ENGINE_PREFIX}{worker_id()}", model=engines.loaded_model())


def engine_heartbeat() -> None:
    """An engine worker's scheduled beat. It also loads the first served model
    when none is, so the first batch does not wait."""
    if engines.loaded_model() is None and engines.served_models():
        engines.get_engine(engines.served_models()[0])
    engine_beat()


def control_alive() -> bool:
    return _fresh().filter(name=CONTROL).exists()


def engine_models() -> list[str]:
    """The model of each engine worker that beat lately with one loaded."""
    return [
        heartbeat.details["model"]
        for heartbeat in _fresh().filter(name__startswith=ENGINE_PREFIX)
        if heartbeat.details.get("model")
    ]


def _fresh():
    return Heartbeat.objects.filter(beat_at__gte=timezone.now() - STALE)
