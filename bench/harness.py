"""Shared pieces of the benchmarks: a server stack in a scratch DATA_DIR, RSS sampling,
and synthetic Aris-like input files."""

import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

_WORDS = (
    "candidate experience python backend team lead years cloud data product communication "
    "strong senior role hiring manager interview skills distributed systems ownership mentor "
    "startup growth analytics security reliability stakeholder delivery design review"
).split()


POSTGRES = "postgres://postgres@127.0.0.1:5432/batchserver_bench"


def database_url(choice: str) -> str | None:
    """The benchmark's database: None for SQLite (in the scratch DATA_DIR), or a
    fresh PostgreSQL database on the local server."""
    if choice == "sqlite":
        return None
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS batchserver_bench")
        db.execute("CREATE DATABASE batchserver_bench")
    return POSTGRES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def chat_line(custom_id: str, messages: list[dict], **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"messages": messages, **body},
    }


def write_requests(
    path: Path, count: int, *, model: str, line_bytes: int = 4000, seed: int = 0, **body
) -> Path:
    """`count` chat requests of about `line_bytes` each, like Aris's evaluations."""
    rng = random.Random(seed)
    system = "You evaluate candidates for a recruiting team. " + words(rng, 200)
    with open(path, "w") as out:
        for i in range(count):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": ""}]
            line = chat_line(f"candidate-{i}", messages, model=model, **body)
            room = line_bytes - len(json.dumps(line))
            messages[1]["content"] = words(rng, max(1, room // 8))[: max(1, room)]
            out.write(json.dumps(line) + "\n")
    return path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.platform()}"


class RssSampler:
    """Peak RSS per process of each named part, sampled every 20 ms in a thread."""

    def __init__(self, parts: dict[str, psutil.Process]):
        self.parts = parts
        self.peak: dict[str, int] = dict.fromkeys(parts, 0)
        self.samples: dict[str, list[int]] = {name: [] for name in parts}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            for name, root in self.parts.items():
                try:
                    processes = [root, *root.children(recursive=True)]
                    rss = max(p.memory_info().rss for p in processes)
                except psutil.Error:
                    continue
                self.samples[name].append(rss)
                self.peak[name] = max(self.peak[name], rss)
            time.sleep(0.02)


class Stack:
    """`manage.py serve` in a scratch DATA_DIR, with an API key."""

    def __init__(self, *, database_url: str | None, only: list[str], env: dict | None = None):
        self.data_dir = Path(tempfile.mkdtemp(prefix="batchserver-bench-"))
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data_dir),
            "API_BIND": f"127.0.0.1:{self.api_port}",
            "VIEWER_BIND": f"127.0.0.1:{free_port()}",
            "LOG_LEVEL": "WARNING",
            "QUICKSTART": "true",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
            # The tiny model unless a benchmark names another (the quickstart
            # default is the instruct model).
            "MODELS": f"tiny-chat={self.data_dir / 'models' / 'tiny-chat'}",
            **(env or {}),
        }
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.only = only
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def start(self) -> "Stack":
        self.manage("migrate", "--noinput")
        self.key = self.manage("create_api_key", "bench")
        log = open(self.data_dir / "serve.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [PYTHON, str(ROOT / "manage.py"), "serve", "--only", *self.only],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/models", headers=self.headers, timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError((self.data_dir / "serve.log").read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/v1"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self):
        import openai

        return openai.OpenAI(base_url=self.url, api_key=self.key, max_retries=0, timeout=600)

    def parts(self) -> dict[str, psutil.Process]:
        """The serve children by role: api, viewer, control, engine."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            command = " ".join(child.cmdline())
            environ = child.environ()
            if "gunicorn" in command:
                # The title is "gunicorn: master [batchserver-api]" once setproctitle runs.
                found["viewer" if "viewer" in command else "api"] = child
            elif environ.get("Q_CLUSTER_NAME") == "engine":
                found["engine"] = child
            else:
                found["control"] = child
        return found

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


@contextmanager
def stack(**kwargs):
    running = Stack(**kwargs).start()
    try:
        yield running
    finally:
        running.stop()


def submit(client, path: Path, until: set[str]) -> tuple[object, float, float]:
    """Upload `path`, create a batch, wait for a status in `until`.

    Returns (batch, seconds uploading, seconds from create to that status).
    """
    started = time.perf_counter()
    with open(path, "rb") as handle:
        uploaded = client.files.create(file=(path.name, handle), purpose="batch")
    created = time.perf_counter()
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait_for_status(client, batch.id, until)
    return batch, created - started, time.perf_counter() - created


def wait_for_status(client, batch_id: str, statuses: set[str], interval: float = 0.05):
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(interval)
