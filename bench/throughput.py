"""Throughput: the same chat requests through our server and through `vllm run-batch`.

    .venv/bin/python bench/throughput.py                       # tiny model, 5,000 x 32
    .venv/bin/python bench/throughput.py --model instruct --requests 200 --tokens 64

Both run the same local model (the random-weight tiny one, or the quickstart's
SmolLM2-135M-Instruct with a recruiter rubric as system prompt) with identical
engine settings (single-process engine, eager mode, no chunked prefill, the
model's KV cache, context and dtype) and fixed-length outputs (`ignore_eos`).
Ours: from `batches.create` to `completed`, the engine already warm. run-batch:
processing time, its engine start-up excluded (the clock starts when it logs
"Reading batch"). Target ratio (ours / run-batch) >= 0.9.
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

# Our engine's CPU settings (batches/engines/vllm.py CPU_ENGINE_ARGS), as flags.
RUN_BATCH_FLAGS = [
    "--distributed-executor-backend",
    "uni",
    "--enforce-eager",
    "--no-enable-chunked-prefill",
]
# Per model: the served name, how the stack gets it, and its own engine flags
# (batchserver/settings.py INSTRUCT_MODEL_ENGINE_ARGS for the instruct model).
MODELS = {
    "tiny": {
        "name": "tiny-chat",
        "build": "make_tiny_model",
        "env": {},
        "flags": ["--kv-cache-memory-bytes", str(256 * 2**20)],
    },
    "instruct": {
        "name": "smollm2-135m-instruct",
        "build": "make_instruct_model",
        "env": {"MODELS": ""},  # the quickstart default, with its engine settings
        "flags": [
            *("--kv-cache-memory-bytes", str(2**30), "--max-model-len", "4096"),
            *("--dtype", "float32"),
        ],
    },
}
RUBRIC = (
    "You are a recruiter hiring a senior backend engineer. Score the candidate from 0 to 100, "
    "give a verdict (strong yes, yes, maybe, no) and up to three short reasons."
)


def write_input(path: Path, count: int, tokens: int, model: str) -> None:
    with open(path, "w") as out:
        for i in range(count):
            messages = [{"role": "user", "content": f"Evaluate candidate {i} for a senior role."}]
            if model != "tiny-chat":
                messages.insert(0, {"role": "system", "content": RUBRIC})
            line = harness.chat_line(
                f"candidate-{i}", messages, model=model, max_tokens=tokens, ignore_eos=True
            )
            out.write(json.dumps(line) + "\n")


def ours(path: Path, warmup: Path, database_url: str | None, model: dict):
    with harness.stack(
        database_url=database_url,
        only=["api", "control", "engine"],
        env={"ENGINE": "vllm", **model["env"]},
    ) as server:
        server.manage(model["build"])
        client = server.client()

        for input_path in (warmup, path):  # the warm-up batch loads the model
            batch, _, elapsed = harness.submit(client, input_path, {"completed", "failed"})
            assert batch.status == "completed" and batch.request_counts.failed == 0, batch
        return elapsed, str(server.data_dir / "models" / model["name"]), batch


def run_batch(path: Path, model_dir: str, model: dict, multiprocessing: bool) -> float:
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
        model["name"],
        *RUN_BATCH_FLAGS,
        *model["flags"],
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
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    args = parser.parse_args()
    model = MODELS[args.model]

    workdir = Path(tempfile.mkdtemp())
    path, warmup = workdir / "input.jsonl", workdir / "warmup.jsonl"
    write_input(path, args.requests, args.tokens, model["name"])
    write_input(warmup, 20, args.tokens, model["name"])

    ours_seconds, model_dir, batch = ours(path, warmup, args.database_url, model)
    baseline = {
        "multi-process": run_batch(path, model_dir, model, multiprocessing=True),
        "single-process": run_batch(path, model_dir, model, multiprocessing=False),
    }
    best_mode = min(baseline, key=baseline.get)
    theirs = baseline[best_mode]

    print(f"machine: {harness.machine()}")
    print(f"model: {model['name']}")
    print(f"input: {args.requests} chat requests x {args.tokens} output tokens (ignore_eos)")
    print(f"ours: {ours_seconds:.2f} s = {args.requests / ours_seconds:.0f} req/s")
    print(f"  usage: {batch.usage.input_tokens} in, {batch.usage.output_tokens} out")
    for mode, seconds in baseline.items():
        print(f"vllm run-batch ({mode}): {seconds:.2f} s = {args.requests / seconds:.0f} req/s")
    print(f"ratio ours / run-batch ({best_mode}, the faster): {theirs / ours_seconds:.2f}")


if __name__ == "__main__":
    main()
