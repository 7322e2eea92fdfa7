"""Ingest: upload + validation + stored rows of a 50,000-request, ~200 MB input file.

    .venv/bin/python bench/ingest.py                      # SQLite
    .venv/bin/python bench/ingest.py --database postgres  # PostgreSQL at 127.0.0.1

Target: <= 10 s end to end and <= 300 MB peak RSS in any server process.
The clock runs from the start of the upload until the batch is `in_progress`
(every line validated and stored as a row, chunks enqueued).
"""

import argparse
import tempfile
from pathlib import Path

import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--line-bytes", type=int, default=4000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    path = Path(tempfile.mkdtemp()) / "input.jsonl"
    harness.write_requests(path, args.requests, model="tiny-chat", line_bytes=args.line_bytes)
    size = path.stat().st_size
    database_url = harness.database_url(args.database)

    with harness.stack(database_url=database_url, only=["api", "control"]) as server:
        client = server.client()
        with harness.RssSampler(server.parts()) as rss:
            batch, upload, store = harness.submit(client, path, {"in_progress", "failed"})
        assert batch.status == "in_progress", batch.errors
        assert batch.request_counts.total == args.requests

    print(f"machine: {harness.machine()}")
    print(f"database: {args.database}")
    print(f"input: {args.requests} requests, {size / 1e6:.1f} MB")
    print(f"upload: {upload:.2f} s ({size / 1e6 / upload:.0f} MB/s)")
    print(f"validate + store: {store:.2f} s")
    print(f"total: {upload + store:.2f} s")
    for name, peak in rss.peak.items():
        print(f"peak RSS {name}: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
