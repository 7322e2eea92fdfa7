import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from batches.pipeline.enqueue import ENGINE_CLUSTER

STOP_TIMEOUT = 30


def _lower_priority() -> None:
    """Run the engine cluster below the API: it is throughput work, the API is
    latency work, and on one host they share the CPUs."""
    os.nice(settings.ENGINE_NICE)


def _parts() -> dict[str, tuple[list[str], dict[str, str]]]:
    python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
    gunicorn_config = settings.BASE_DIR / "deploy" / "gunicorn"
    return {
        "api": ([python, "-m", "gunicorn", "-c", str(gunicorn_config / "api.py")], {}),
        "viewer": ([python, "-m", "gunicorn", "-c", str(gunicorn_config / "viewer.py")], {}),
        "control": ([python, manage, "qcluster"], {}),
        "engine": ([python, manage, "qcluster"], {"Q_CLUSTER_NAME": ENGINE_CLUSTER}),
    }


class Command(BaseCommand):
    help = "Run the API (4080), the viewer (8001) and both worker clusters until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            nargs="+",
            choices=list(_parts()),
            help="Start only these parts (default: all).",
        )

    def handle(self, *args, only: list[str] | None, **options):
        parts = {name: spec for name, spec in _parts().items() if not only or name in only}
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, (command, extra_env) in parts.items():
                children[name] = subprocess.Popen(
                    command,
                    env={**os.environ, **extra_env},
                    preexec_fn=_lower_priority if name == "engine" else None,
                )
                self.stderr.write(f"serve: started {name} (pid {children[name].pid})")
            api = os.environ.get("API_BIND", "127.0.0.1:4080")
            viewer = os.environ.get("VIEWER_BIND", "127.0.0.1:8001")
            self.stderr.write(
                f"serve: API on http://{api}/v1, viewer on http://{viewer}/ (Ctrl-C stops all)"
            )
            while not stopping:
                exited = [name for name, child in children.items() if child.poll() is not None]
                if exited:
                    self.stderr.write(f"serve: {', '.join(exited)} exited; stopping the rest")
                    break
                time.sleep(0.5)
        finally:
            self._stop(children)
        if not stopping:
            sys.exit(1)

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"serve: {name} did not stop in {STOP_TIMEOUT} s; killing it")
                child.kill()
                child.wait()
        self.stderr.write("serve: stopped")
