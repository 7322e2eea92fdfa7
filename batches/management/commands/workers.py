"""`manage.py workers`: django-q2's `qcluster`, with a stop that hands work back.

django-q2 stops a cluster by letting each worker finish its task, and an engine
worker's task is a whole chunk (minutes). Here SIGTERM or SIGINT first tells
the engine workers to give their running chunk back (batches.pipeline.workers),
so another worker resumes it at once, then stops the cluster as `qcluster`
does: within seconds, busy or idle.

Signal this process only (`manage.py serve` starts each part in its own
session; the systemd units use KillMode=mixed). A SIGTERM to the whole process
group kills every worker mid-task and django-q2's sentinel with it; `qcluster`
then waits forever for the dead sentinel (in multiprocessing.Event.set(), for
a sleeper that will never wake), which is why SIGTERM to `serve` used to end in
SIGKILL. This command notices and exits, and the chunks of the killed workers
are recovered as after a crash.
"""

import contextlib
import signal

import psutil
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_q.cluster import Cluster

from batches.pipeline.workers import HAND_BACK_SIGNAL


class Command(BaseCommand):
    help = (
        "Run a django-q2 cluster (Q_CLUSTER_NAME=engine for the engine cluster) "
        "until SIGTERM or Ctrl-C, handing running chunks back when stopped."
    )

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as qcluster: tasks are signed with it
        # Inherited by every process the cluster forks: only engine workers
        # answer it (they install a handler once started).
        signal.signal(HAND_BACK_SIGNAL, signal.SIG_IGN)
        cluster = Cluster()  # installs django-q2's handlers, replaced below
        stopping: list[int] = []

        def stop(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        cluster.start()
        sentinel = cluster.sentinel
        while not stopping and sentinel.is_alive():
            sentinel.join(timeout=0.5)
        if not stopping:
            raise CommandError(f"The cluster's sentinel exited with code {sentinel.exitcode}")
        # A signal sent to the whole group kills the sentinel too: let it die
        # before the stop below, which would otherwise wait for it forever.
        sentinel.join(timeout=0.2)
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(sentinel.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.send_signal(HAND_BACK_SIGNAL)
        cluster.stop()
