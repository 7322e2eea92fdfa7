"""Process and waiting helpers: plain functions for tests that start servers or poll.

Test data lives in tests/factories.py and fixtures in the conftest.py files.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.2, message=""):
    """Poll `predicate` until it returns something truthy, and return that.

    `timeout` is a deadline, not a pause: size it for a loaded two-core machine.
    `message` may be a callable (e.g. a log reader), read only on timeout so
    that the failure shows the logs as they were at the deadline.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raise_thread_failures()
        if value := predicate():
            return value
        time.sleep(interval)
    raise_thread_failures()
    detail = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout} s: {detail}")


# Exceptions that ended a thread during the current test (tests/conftest.py
# installs the hook and clears the list per test).
thread_failures: list[threading.ExceptHookArgs] = []


def raise_thread_failures() -> None:
    """Fail now, with its cause, if a thread died: a dead worker or server
    thread would otherwise show only as a wait that runs to its deadline."""
    if thread_failures:
        failure = thread_failures[0]
        name = failure.thread.name if failure.thread else "a thread"
        raise AssertionError(
            f"{name} died: {failure.exc_type.__name__}: {failure.exc_value}"
        ) from failure.exc_value


def start_process_group(command: list[str], **popen) -> subprocess.Popen:
    """Start `command` as the leader of a new process group, so that it and
    every child it spawns (vLLM's engine core, qcluster workers) stop together."""
    return subprocess.Popen(command, start_new_session=True, **popen)


def stop_process_group(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM the process's group, then SIGKILL what is left after `timeout`.

    Children are killed even when the leader already exited (orphans keep the
    group id), so nothing a test started outlives it.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()
            time.sleep(0.1)
        if not _group_alive(process.pid):
            break
    process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def production_env(tmp_path, **overrides) -> dict:
    empty_env_file = tmp_path / "env"
    empty_env_file.write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "batchserver.settings",
        # Not the checkout's .env, which may hold the quickstart's settings.
        "ENV_FILE": str(empty_env_file),
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "api.example.com,review.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://review.example.com",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True
    )


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
