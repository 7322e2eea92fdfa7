"""What every django-q2 worker process does besides its tasks.

At start (django-q2's `post_spawn` signal, connected in batches.apps), in the
worker process, before it takes a task:

- a daemon thread beats every heartbeats.BEAT_SECONDS, so readiness reflects
  a live process. In an engine worker it also renews the leases this process
  holds and hands back, to pending, the chunks of dead workers (lapsed leases,
  and at once those of a process of this host that is gone), so a killed
  worker's chunk runs again within seconds wherever another worker lives; and
  it truncates SQLite's write-ahead log once it is past its limit;
- an engine worker releases the chunks of dead workers, then loads the first
  served model, so the first batch does not wait for it and /readyz turns
  ready as soon as it is loaded;
- an engine worker answers HAND_BACK_SIGNAL (sent by `manage.py workers` when
  its cluster stops) by giving its running chunk back.

A worker that stops cleanly removes its heartbeat row.
"""

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.util import Finalize

from django.db import connections
from django_q.conf import Conf

from batches import engines
from batches.pipeline import execution, heartbeats, reconcile
from batches.pipeline.enqueue import ENGINE_CLUSTER

logger = logging.getLogger(__name__)

# Ignored by every process of a cluster that `manage.py workers` starts (they
# inherit the disposition), except engine workers, which hand their chunk back.
HAND_BACK_SIGNAL = signal.SIGUSR1


def worker_started(**kwargs) -> None:
    """django-q2's post_spawn receiver: runs in each new worker process."""
    if multiprocessing.parent_process() is None:
        return  # django-q2's sync mode (tests) runs a task inline, in this process
    stop = start(engine=Conf.CLUSTER_NAME == ENGINE_CLUSTER)
    connections.close_all()  # django-q2 opens its own per task
    # Run when the worker process ends cleanly (multiprocessing runs these at
    # a child's exit; atexit does not), not when it is killed.
    Finalize(None, stop, exitpriority=10)


def start(*, engine: bool) -> Callable[[], None]:
    """Set this worker process up; returns what to call when it stops."""
    stopped = threading.Event()
    if engine:
        signal.signal(HAND_BACK_SIGNAL, lambda signum, frame: execution.hand_back())
    try:
        if engine:
            reconcile.recover_lapsed_chunks()
        _beat(engine)
    except Exception:
        # The database is away: the worker still starts, and its heartbeat
        # thread tries again.
        logger.exception("Worker start: could not reach the database")
    if engine and engines.served_models():
        try:
            engines.get_engine(engines.served_models()[0])
        except Exception:
            # The first chunk tries again and fails with the cause; /readyz says
            # no worker holds a model meanwhile.
            logger.exception("Could not load %s at worker start", engines.served_models()[0])
        else:
            try:
                _beat(engine)  # ready now, not at the next beat
            except Exception:
                logger.exception("Heartbeat failed")
    # Started after the load: vLLM may fork its engine processes, and a fork
    # is safest with no other thread running.
    threading.Thread(
        target=_beat_forever, args=(engine, stopped), name="heartbeat", daemon=True
    ).start()

    def stop() -> None:
        stopped.set()
        try:
            heartbeats.forget()
        except Exception:
            logger.exception("Could not remove this worker's heartbeat")

    return stop


def _beat_forever(engine: bool, stopped: threading.Event) -> None:
    while not stopped.wait(heartbeats.BEAT_SECONDS):
        try:
            _beat(engine)
            if engine:
                execution.leases_renew()
                reconcile.recover_lapsed_chunks()
                # The engine writes the most: keep SQLite's log from outgrowing
                # its limit between two reconciler passes.
                reconcile.truncate_sqlite_wal()
        except Exception:
            # A database hiccup must not end the beats for good.
            logger.exception("Heartbeat failed")
        finally:
            connections.close_all()  # this thread's connections only


def _beat(engine: bool) -> None:
    if engine:
        heartbeats.engine_beat()
    else:
        heartbeats.control_beat()
