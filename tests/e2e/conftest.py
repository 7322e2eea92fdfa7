import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import stop_process_group


class Processes:
    """Server and worker subprocesses, stopped (and their logs kept) at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running[name] = process
        return process

    def qcluster(self, env: dict, *, cluster: str | None = None) -> subprocess.Popen:
        """A django-q2 cluster as serve and the systemd units run it (`manage.py workers`)."""
        env = {**env, "Q_CLUSTER_NAME": cluster} if cluster else env
        manage = str(settings.BASE_DIR / "manage.py")
        name = f"{cluster or 'control'}-{len(self.running)}"
        return self.start(name, [sys.executable, manage, "workers"], env)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def stop_all(self) -> None:
        # SIGTERM to each main process, as serve and systemd stop them; then
        # whatever is left of each process group goes.
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            stop_process_group(process, timeout=5)


@pytest.fixture
def processes(tmp_path, request):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(procs.logs())
