"""`manage.py serve`: the quickstart's four parts under one supervisor.

Each part (two gunicorn servers, the control and the engine cluster) runs in
its own session, so a signal meant for serve (Ctrl-C in its terminal, a
SIGTERM to its process group) reaches serve alone, and serve stops each part
through its main process, which stops the rest in order. (A SIGTERM to every
process of a django-q2 cluster at once leaves its main process waiting forever;
see batches/management/commands/workers.py.)

A part that dies is started again after a pause that doubles from 1 s up to
60 s while it keeps dying, and starts again from 1 s once it has stayed up for
a minute; the other parts keep serving meanwhile. Only Ctrl-C, SIGTERM or
SIGHUP stop everything.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand

from batches.pipeline.enqueue import ENGINE_CLUSTER

# After SIGTERM, a part has this long to stop before its process group is killed.
STOP_TIMEOUT = 30
RESTART_DELAY_FIRST = 1.0
RESTART_DELAY_MAX = 60.0
# A part that stayed up this long is restarted after RESTART_DELAY_FIRST again.
STABLE_AFTER = 60.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Part:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float = RESTART_DELAY_FIRST
    restart_at: float = 0.0

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the part (its session is its process group)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _parts() -> list[Part]:
    python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
    gunicorn_config = settings.BASE_DIR / "deploy" / "gunicorn"
    return [
        Part("api", [python, "-m", "gunicorn", "-c", str(gunicorn_config / "api.py")]),
        Part("viewer", [python, "-m", "gunicorn", "-c", str(gunicorn_config / "viewer.py")]),
        Part("control", [python, manage, "workers"]),
        Part("engine", [python, manage, "workers"], {"Q_CLUSTER_NAME": ENGINE_CLUSTER}),
    ]


def _child_setup(parent: int, engine: bool):
    def setup() -> None:
        if sys.platform.startswith("linux"):
            # Stopped (SIGTERM to its main process) if serve itself is killed,
            # instead of living on, holding the ports and the model.
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # serve died before prctl
                os._exit(1)
        if engine:
            # The engine is throughput work, the API latency work, and on one
            # host they share the CPUs.
            os.nice(settings.ENGINE_NICE)

    return setup


class Command(BaseCommand):
    help = "Run the API (4080), the viewer (8001) and both worker clusters until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            nargs="+",
            choices=[part.name for part in _parts()],
            help="Start only these parts (default: all).",
        )

    def handle(self, *args, only: list[str] | None, **options):
        parts = [part for part in _parts() if not only or part.name in only]
        stops: list[int] = []

        def stop(signum, frame):
            stops.append(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        try:
            for part in parts:
                self._start(part)
            api = os.environ.get("API_BIND", "127.0.0.1:4080")
            viewer = os.environ.get("VIEWER_BIND", "127.0.0.1:8001")
            self._say(f"API on http://{api}/v1, viewer on http://{viewer}/ (Ctrl-C stops all)")
            while not stops:
                for part in parts:
                    self._supervise(part)
                time.sleep(0.2)
        finally:
            self._stop(parts, stops)

    def _start(self, part: Part) -> None:
        part.process = subprocess.Popen(
            part.command,
            env={**os.environ, **part.env},
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid(), engine=part.name == "engine"),
        )
        part.started_at = time.monotonic()
        self._say(f"started {part.name} (pid {part.process.pid})")

    def _supervise(self, part: Part) -> None:
        now = time.monotonic()
        if part.process is None:
            if now >= part.restart_at:
                self._start(part)
            return
        code = part.process.poll()
        if code is None:
            return
        part.kill_group()  # what it leaves behind, e.g. a worker still holding the model
        if now - part.started_at >= STABLE_AFTER:
            part.delay = RESTART_DELAY_FIRST
        self._say(
            f"{part.name} exited with code {code}; restarting it in {part.delay:g} s "
            "(the other parts keep running)"
        )
        part.process = None
        part.restart_at = now + part.delay
        part.delay = min(part.delay * 2, RESTART_DELAY_MAX)

    def _stop(self, parts: list[Part], stops: list[int]) -> None:
        running = [part for part in parts if part.process and part.process.poll() is None]
        for part in running:
            assert part.process is not None
            part.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for part in running:
            assert part.process is not None
            while part.process.poll() is None and time.monotonic() < deadline and len(stops) < 2:
                time.sleep(0.1)
            if part.process.poll() is None:
                reason = "a second stop signal" if len(stops) >= 2 else f"{STOP_TIMEOUT} s"
                self._say(f"{part.name} did not stop ({reason}); killing it")
        for part in parts:
            part.kill_group()
            if part.process is not None:
                part.process.wait()
        self._say("stopped")

    def _say(self, message: str) -> None:
        self.stderr.write(f"serve: {message}")
