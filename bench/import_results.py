"""`import_results` of a 200,000-line output file with its input file.

    .venv/bin/python bench/import_results.py [--database postgres] [--lines 200000]

Writes an Aris-like input file (~4 KB a line) and the output file `vllm run-batch`
would write for it, then runs `manage.py import_results` as an operator would,
twice: the first import (wall time, peak RSS) and the re-import of the same file,
which must change nothing.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import harness
import orjson
import psutil


def write_output(input_path: Path, output_path: Path) -> None:
    """One vLLM-style answer per input line, as `vllm run-batch` writes them."""
    with input_path.open("rb") as source, output_path.open("wb") as out:
        for index, raw in enumerate(source):
            custom_id = orjson.loads(raw)["custom_id"]
            body = {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": 1764000000,
                "model": "tiny-chat",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"Candidate {index}: hire."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 900, "completion_tokens": 8, "total_tokens": 908},
            }
            line = {
                "id": f"vllm-{index}",
                "custom_id": custom_id,
                "response": {"status_code": 200, "request_id": f"vllm-batch-{index}", "body": body},
                "error": None,
            }
            out.write(orjson.dumps(line) + b"\n")


def run_import(env: dict, *args: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [harness.PYTHON, str(harness.ROOT / "manage.py"), "import_results", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with harness.RssSampler({"import": psutil.Process(process.pid)}) as sampler:
        output, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"import_results failed:\n{output}")
    return time.perf_counter() - started, sampler.peak["import"], output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--lines", type=int, default=200_000)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batchserver-bench-import-"))
    input_path, output_path = work / "input.jsonl", work / "output.jsonl"
    harness.write_requests(input_path, options.lines, model="tiny-chat", line_bytes=4000)
    write_output(input_path, output_path)
    env = {**os.environ, "DATA_DIR": str(work / "data"), "LOG_LEVEL": "WARNING"}
    env.setdefault("QUICKSTART", "true")
    env.setdefault("SECRET_KEY", "bench-only")
    if database_url := harness.database_url(options.database):
        env["DATABASE_URL"] = database_url
    subprocess.run(
        [harness.PYTHON, str(harness.ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True
    )

    print(harness.machine())
    mib = (input_path.stat().st_size + output_path.stat().st_size) / 2**20
    print(f"{options.lines:,} lines, input + output {mib:.0f} MiB, {options.database}")
    args = (str(output_path), "--input", str(input_path))
    for label in ("import", "re-import"):
        elapsed, peak, last_line = run_import(env, *args)
        print(f"{label}: {elapsed:.1f} s, peak RSS {peak / 2**20:.0f} MiB: {last_line}")


if __name__ == "__main__":
    main()
