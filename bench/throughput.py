"""Throughput: the same 5,000 chat requests through our server and through `vllm run-batch`.

    .venv/bin/python bench/throughput.py

Both run the tiny local model with identical engine settings (single-process
engine, eager mode, 256 MiB KV cache) and fixed-length outputs (`ignore_eos`,
32 tokens). Ours: from `batches.create` to `completed`, the engine already
warm. run-batch: processing time, its engine start-up excluded (the clock
starts when it logs "Reading batch"). Target ratio (ours / run-batch) >= 0.9.
"""

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import harness

RUN_BATCH_FLAGS = [
    "--distributed-executor-backend",
    "uni",
    "--enforce-eager",
    "--kv-cache-memory-bytes",
    str(256 * 2**20),
]


def write_input(path: Path, count: int, tokens: int) -> None:
    with open(path, "w") as out:
        for i in range(count):
            messages = [{"role": "user", "content": f"Evaluate candidate {i} for a senior role."}]
            line = harness.chat_line(
                f"candidate-{i}", messages, model="tiny-chat", max_tokens=tokens, ignore_eos=True
            )
            out.write(json.dumps(line) + "\n")


def ours(path: Path, warmup: Path, database_url: str | None):
    with harness.stack(
        database_url=database_url,
        only=["api", "control", "engine"],
        env={"ENGINE": "vllm"},
    ) as server:
        server.manage("make_tiny_model", "--if-missing")
        client = server.client()

        for input_path in (warmup, path):  # the warm-up batch loads the model
            batch, _, elapsed = harness.submit(client, input_path, {"completed", "failed"})
            assert batch.status == "completed" and batch.request_counts.failed == 0, batch
        return elapsed, str(server.data_dir / "models" / "tiny-chat"), batch


def run_batch(path: Path, model_dir: str, multiprocessing: bool) -> float:
    output = path.with_suffix(".out.jsonl")
    env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1"}
    if not multiprocessing:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    command = [
        harness.PYTHON,
        "-m",
        "vllm.entrypoints.openai.run_batch",
        "-i",
        str(path),
        "-o",
        str(output),
        "--model",
        model_dir,
        "--served-model-name",
        "tiny-chat",
        *RUN_BATCH_FLAGS,
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started = {}

    def watch():
        for line in process.stdout:
            if "Reading batch from" in line and "at" not in started:
                started["at"] = time.perf_counter()

    watcher = threading.Thread(target=watch)
    watcher.start()
    process.wait()
    finished = time.perf_counter()
    watcher.join()
    assert process.returncode == 0 and "at" in started, "run-batch failed"
    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert all(r["response"]["status_code"] == 200 for r in results)
    return finished - started["at"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp())
    path, warmup = workdir / "input.jsonl", workdir / "warmup.jsonl"
    write_input(path, args.requests, args.tokens)
    write_input(warmup, 20, args.tokens)

    ours_seconds, model_dir, batch = ours(path, warmup, args.database_url)
    baseline = {
        "multi-process": run_batch(path, model_dir, multiprocessing=True),
        "single-process": run_batch(path, model_dir, multiprocessing=False),
    }
    best_mode = min(baseline, key=baseline.get)
    theirs = baseline[best_mode]

    print(f"machine: {harness.machine()}")
    print(f"input: {args.requests} chat requests x {args.tokens} output tokens (ignore_eos)")
    print(f"ours: {ours_seconds:.2f} s = {args.requests / ours_seconds:.0f} req/s")
    print(f"  usage: {batch.usage.input_tokens} in, {batch.usage.output_tokens} out")
    for mode, seconds in baseline.items():
        print(f"vllm run-batch ({mode}): {seconds:.2f} s = {args.requests / seconds:.0f} req/s")
    print(f"ratio ours / run-batch ({best_mode}, the faster): {theirs / ours_seconds:.2f}")


if __name__ == "__main__":
    main()
