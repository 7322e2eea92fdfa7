"""SIGKILL of an engine worker mid-chunk → the first new result of its chunk.

    .venv/bin/python bench/recovery.py [--before DIR] [--cases restart takeover ready]

Real processes on SQLite, in a scratch DATA_DIR per run: the API (gunicorn),
the control cluster and engine clusters as `serve` starts them, the test
engine (each request sleeps 10 ms, so a chunk of 500 runs for ~5 s).
Two cases, each timed from the SIGKILL of the engine cluster's process group
(its main process, sentinel and worker, no goodbye) to the first request of
the killed chunk answered afterwards:

- restart: the only engine cluster is killed and a new one started at once
  (a crash under systemd or serve, which restart it);
- takeover: two engine clusters run; the one holding a chunk is killed and the
  other goes on.

A third case, ready, times a fresh `manage.py serve` on the real engine (vLLM,
the tiny model) from its start to the first 200 from /readyz.

`--before DIR` runs the same cases first on another checkout (e.g.
`git archive <commit> | tar -x -C DIR`), with its own defaults, under this
virtualenv, so both sets of figures come from one machine in one run.
"""

import argparse
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import httpx

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 900.0
CASES = ["restart", "takeover", "ready"]


class Tree:
    """One checkout's processes in a scratch DATA_DIR."""

    def __init__(self, root: Path, *, chunk_size: int):
        self.root = root
        self.data_dir = Path(tempfile.mkdtemp(prefix="batchserver-recovery-"))
        self.api_port = harness.free_port()
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data_dir),
            "API_BIND": f"127.0.0.1:{self.api_port}",
            "QUICKSTART": "true",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "ENGINE": "test",
            "MODELS": f"tiny-chat={self.data_dir / 'models' / 'tiny-chat'}",
            "CHUNK_SIZE": str(chunk_size),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "batchserver.settings",
            "PYTHONPATH": str(root),
        }
        self.env.pop("DATABASE_URL", None)
        # What this checkout's serve runs for a cluster.
        workers = root / "batches" / "management" / "commands" / "workers.py"
        self.cluster_command = "workers" if workers.exists() else "qcluster"
        self.processes: list[subprocess.Popen] = []

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, str(self.root / "manage.py"), *args],
            env=self.env,
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def spawn(self, name: str, command: list[str], **env: str) -> subprocess.Popen:
        log = open(self.data_dir / f"{name}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            env={**self.env, **env},
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def cluster(self, name: str | None = None) -> subprocess.Popen:
        env = {"Q_CLUSTER_NAME": name} if name else {}
        manage = [sys.executable, str(self.root / "manage.py"), self.cluster_command]
        return self.spawn(name or "control", manage, **env)

    def start(self) -> "Tree":
        self.manage("migrate", "--noinput")
        self.key = self.manage("create_api_key", "bench")
        config = self.root / "deploy" / "gunicorn" / "api.py"
        self.spawn("api", [sys.executable, "-m", "gunicorn", "-c", str(config)])
        self.cluster()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                headers = {"Authorization": f"Bearer {self.key}"}
                httpx.get(f"{self.url}/models", headers=headers, timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the API did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/v1"

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'batchserver.sqlite3'}?mode=ro", uri=True)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def create_batch(tree: Tree, count: int) -> str:
    import openai

    client = openai.OpenAI(base_url=tree.url, api_key=tree.key, max_retries=0)
    lines = [
        harness.chat_line(
            f"c{i}", [{"role": "user", "content": "[[sleep:0.01]] candidate"}], model="tiny-chat"
        )
        for i in range(count)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def chunk_held_by(tree: Tree, engine: subprocess.Popen) -> tuple[int, int, int, int] | None:
    """(chunk id, first line, last line) of a chunk `engine`'s worker runs with some of it
    answered and a good part left."""
    import psutil

    pids = {str(p.pid) for p in psutil.Process(engine.pid).children(recursive=True)}
    with tree.db() as db:
        rows = db.execute(
            "SELECT c.id, c.batch_id, c.first_line, c.last_line, c.leased_by FROM batches_chunk c"
            " WHERE c.status = 'running'"
        ).fetchall()
        for chunk_id, batch_id, first, last, holder in rows:
            if holder.rpartition(":")[2] not in pids:
                continue
            done = answered(db, batch_id, first, last)
            if 20 <= done <= (last - first) // 2:
                return chunk_id, batch_id, first, last
    return None


def answered(db: sqlite3.Connection, batch_id: int, first: int, last: int) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM batches_request WHERE batch_id = ? AND line BETWEEN ? AND ?"
        " AND status != 'pending'",
        (batch_id, first, last),
    ).fetchone()[0]


def wait(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise RuntimeError("timed out")


def measure(root: Path, case: str, requests: int) -> float:
    tree = Tree(root, chunk_size=500).start()
    try:
        engines = [tree.cluster("engine")]
        if case == "takeover":
            engines.append(tree.cluster("engine"))
        create_batch(tree, requests)
        victim, held = wait(
            lambda: next(
                ((e, h) for e in engines if (h := chunk_held_by(tree, e)) is not None), None
            ),
            timeout=120,
        )
        kill_group(victim)
        killed_at = time.monotonic()
        _, batch_id, first, last = held
        with tree.db() as db:
            before = answered(db, batch_id, first, last)
        if case == "restart":
            tree.cluster("engine")

        def resumed():
            with tree.db() as db:
                return answered(db, batch_id, first, last) > before

        wait(resumed, timeout=DEADLINE, interval=0.1)
        return time.monotonic() - killed_at
    finally:
        tree.stop()


def time_to_ready(root: Path) -> float:
    """A fresh `serve` on the real engine (vLLM, the tiny model): seconds from
    its start to the first 200 from /readyz."""
    tree = Tree(root, chunk_size=500)
    tree.env.update(ENGINE="vllm", VIEWER_BIND=f"127.0.0.1:{harness.free_port()}")
    tree.manage("migrate", "--noinput")
    tree.manage("make_tiny_model", "--if-missing")
    started = time.monotonic()
    serve = tree.spawn("serve", [sys.executable, str(root / "manage.py"), "serve"])
    try:

        def ready():
            try:
                return httpx.get(f"{tree.url[:-3]}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait(ready, timeout=600, interval=0.5)
        return time.monotonic() - started
    finally:
        serve.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            serve.wait(timeout=60)
        for child in (serve, *tree.processes):
            kill_group(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure first")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--cases", nargs="+", choices=["restart", "takeover", "ready"], default=CASES
    )
    args = parser.parse_args()
    print(harness.machine())
    trees = [("before", args.before)] if args.before else []
    trees.append(("this code", ROOT))
    for label, root in trees:
        for case in args.cases:
            if case == "ready":
                print(f"{label:10} fresh serve -> /readyz 200: {time_to_ready(root):6.1f} s")
                continue
            seconds = measure(root, case, args.requests)
            print(f"{label:10} {case:9} SIGKILL -> first new result of the chunk: {seconds:6.1f} s")


if __name__ == "__main__":
    main()
