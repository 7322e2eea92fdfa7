"""Download: a 50,000-line output file through `files.content`.

    .venv/bin/python bench/download.py

Target: >= 100 MB/s, with the API server's RSS flat (streamed from disk, never
loaded). The output file comes from a real batch run on the deterministic test
engine (answers of ~300 words, so lines are the size of real evaluations).
"""

import tempfile
import time
from pathlib import Path

import harness

ROUNDS = 5


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "input.jsonl"
    harness.write_requests(path, 50_000, model="tiny-chat", line_bytes=2500, max_tokens=300)

    with harness.stack(
        database_url=None, only=["api", "control", "engine"], env={"ENGINE": "test"}
    ) as server:
        client = server.client()
        with open(path, "rb") as handle:
            uploaded = client.files.create(file=("input.jsonl", handle), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch = harness.wait_for_status(client, batch.id, {"completed", "failed"}, interval=0.5)
        assert batch.request_counts.completed == 50_000, batch

        api = {"api": server.parts()["api"]}
        with harness.RssSampler(api) as idle:
            time.sleep(1)
        timings, size = [], 0
        with harness.RssSampler(api) as busy:
            for _ in range(ROUNDS):
                started = time.perf_counter()
                size = 0
                with client.files.with_streaming_response.content(batch.output_file_id) as body:
                    for block in body.iter_bytes(1 << 20):
                        size += len(block)
                timings.append(time.perf_counter() - started)
        lines = client.files.content(batch.output_file_id).text.count("\n")

    best, median = min(timings), sorted(timings)[len(timings) // 2]
    print(f"machine: {harness.machine()}")
    print(f"output file: {lines} lines, {size / 1e6:.1f} MB")
    print(f"download, {ROUNDS} rounds: median {median:.2f} s = {size / 1e6 / median:.0f} MB/s")
    print(f"  (best {best:.2f} s = {size / 1e6 / best:.0f} MB/s)")
    print(
        f"API server RSS: {idle.peak['api'] / 2**20:.0f} MiB idle, "
        f"{busy.peak['api'] / 2**20:.0f} MiB peak while downloading"
    )


if __name__ == "__main__":
    main()
