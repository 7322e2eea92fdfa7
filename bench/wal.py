"""SQLite's write-ahead log during a large ingest and run, with clients polling.

    .venv/bin/python bench/wal.py [--before DIR] [--requests 50000]

Real processes in a scratch DATA_DIR (the API under gunicorn, the control and
engine clusters as `serve` runs them, the test engine, so the database does
all the work): an Aris-like input file (~4 KB a line) is uploaded and run as
one batch while 20 clients poll it every 0.5 s (--pollers, --interval) and
one downloads its partial results (`?partial=true`) at 1 MiB/s, over and over;
the sizes of the database and of its `-wal` file are sampled every 0.25 s until
the batch completes and its output file is downloaded. `--before DIR` measures
another checkout first, under this virtualenv (see bench/recovery.py).
"""

import argparse
import asyncio
import threading
import time
from pathlib import Path

import harness
import httpx
from recovery import ROOT, Tree

MiB = 2**20


class SizeSampler(threading.Thread):
    def __init__(self, database: Path):
        super().__init__(daemon=True)
        self.database = database
        self.wal = Path(f"{database}-wal")
        self.peak_wal = 0
        self.peak_database = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            for path, attribute in ((self.wal, "peak_wal"), (self.database, "peak_database")):
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                setattr(self, attribute, max(getattr(self, attribute), size))


async def poll(
    url: str, headers: dict, batch_id: str, done: threading.Event, pollers: int, interval: float
) -> None:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def poller(offset: float):
            await asyncio.sleep(offset)
            while not done.is_set():
                await client.get(f"/batches/{batch_id}")
                await asyncio.sleep(interval)

        async def partial_reader():
            """Downloads the results so far at 1 MiB/s, again and again."""
            while not done.is_set():
                async with client.stream(
                    "GET", f"/batches/{batch_id}/results", params={"partial": "true"}
                ) as response:
                    async for _ in response.aiter_bytes(64 * 1024):
                        await asyncio.sleep(1 / 16)
                        if done.is_set():
                            break
                await asyncio.sleep(1)

        await asyncio.gather(
            *(poller(i * interval / pollers) for i in range(pollers)), partial_reader()
        )


def measure(root: Path, input_path: Path, pollers: int, interval: float) -> dict:
    tree = Tree(root, chunk_size=1000).start()
    try:
        tree.cluster("engine")
        import openai

        client = openai.OpenAI(base_url=tree.url, api_key=tree.key, max_retries=0, timeout=600)
        sampler = SizeSampler(tree.data_dir / "batchserver.sqlite3")
        sampler.start()
        started = time.monotonic()
        with open(input_path, "rb") as handle:
            uploaded = client.files.create(file=(input_path.name, handle), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = threading.Event()
        headers = {"Authorization": f"Bearer {tree.key}"}
        pollers = threading.Thread(
            target=asyncio.run,
            args=(poll(tree.url, headers, batch.id, done, pollers, interval),),
            daemon=True,
        )
        pollers.start()
        while (batch := client.batches.retrieve(batch.id)).status not in {"completed", "failed"}:
            time.sleep(1)
        assert batch.status == "completed", batch.errors
        assert batch.output_file_id is not None
        with client.files.with_streaming_response.content(batch.output_file_id) as response:
            for _ in response.iter_bytes(2**20):
                pass
        elapsed = time.monotonic() - started
        done.set()
        pollers.join()
        time.sleep(1)
        sampler.stop.set()
        sampler.join()
        return {
            "seconds": elapsed,
            "peak_wal": sampler.peak_wal / MiB,
            "peak_database": sampler.peak_database / MiB,
            "wal_at_end": sampler.wal.stat().st_size / MiB if sampler.wal.exists() else 0,
        }
    finally:
        tree.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure first")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    print(harness.machine())
    input_path = harness.write_requests(
        Path(Tree(ROOT, chunk_size=1).data_dir) / "input.jsonl", args.requests, model="tiny-chat"
    )
    trees = [("before", args.before)] if args.before else []
    trees.append(("this code", ROOT))
    for label, root in trees:
        figures = measure(root, input_path, args.pollers, args.interval)
        print(
            f"{label:10} {args.requests} requests in {figures['seconds']:.0f} s: database peak "
            f"{figures['peak_database']:.0f} MiB, WAL peak {figures['peak_wal']:.0f} MiB, "
            f"WAL at the end {figures['wal_at_end']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
