"""The quickstart model's dtype on the CPU engine: float32 against bfloat16.

    .venv/bin/python bench/model_dtype.py [--chats 32] [--tokens 64] [--rounds 2]

Builds SmolLM2-135M-Instruct (batches/engines/instruct_model.py), then runs
the same chats through one offline `LLM.chat` per arm, each in a fresh process
with the quickstart's engine settings and vLLM's `dtype` set per arm, arms
interleaved (f32, bf16, f32, bf16, ...) so that a busy machine slows both alike.
Fixed-length outputs (`ignore_eos`). Prints output tokens/s per run, and how
many of 8 seeded sampled answers come out the same alone and among others.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

sys.path.insert(0, str(harness.ROOT))

RUBRIC = "You are a recruiter. Score the candidate 0-100 for a senior backend role; give reasons."


def arm(path: str, chats: int, tokens: int, engine_args: dict) -> dict:
    """One arm, in its own process: timed chats, then the seeded answers."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=path, seed=0, **engine_args)
    conversations = [
        [
            {"role": "system", "content": RUBRIC},
            {"role": "user", "content": f"Candidate {i}: {7 + i % 9} years of Python."},
        ]
        for i in range(chats)
    ]
    params = SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0)
    llm.chat(conversations[:2], params, use_tqdm=False)  # warm-up
    started = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    # Each seeded request alone, then among the other chats (other batch-mates,
    # a warm prefix cache): is the sampled text the same?
    seeded = [SamplingParams(max_tokens=40, temperature=1.0, top_p=0.95, seed=s) for s in range(8)]
    alone = [
        llm.chat([conversations[s]], seeded[s], use_tqdm=False)[0].outputs[0].text for s in range(8)
    ]
    mixed = llm.chat(conversations, seeded + [params] * (chats - 8), use_tqdm=False)
    same = sum(alone[s] == mixed[s].outputs[0].text for s in range(8))
    return {"seconds": elapsed, "tokens": generated, "same": same}


def run_arm(path: Path, dtype: str, chats: int, tokens: int) -> dict:
    from django.conf import settings

    from batches.engines.vllm import CPU_ENGINE_ARGS

    engine_args = json.dumps(
        {**CPU_ENGINE_ARGS, **settings.INSTRUCT_MODEL_ENGINE_ARGS, "dtype": dtype}
    )
    result = subprocess.run(
        [
            *(harness.PYTHON, __file__, "--arm", str(path), "--chats", str(chats)),
            *("--tokens", str(tokens), "--engine-args", engine_args),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        },
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"arm failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--engine-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        result = arm(args.arm, args.chats, args.tokens, json.loads(args.engine_args))
        print("RESULT " + json.dumps(result))
        return

    # The settings module's constants only (its throw-away DATA_DIR is unused).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings_test")
    import django

    django.setup()
    from batches.engines.instruct_model import build_instruct_model

    started = time.perf_counter()
    model = build_instruct_model(Path(tempfile.mkdtemp()) / "model")
    size = sum(f.stat().st_size for f in model.iterdir()) / 2**20
    print(f"built in {time.perf_counter() - started:.1f} s ({size:.0f} MiB)")

    print(f"machine: {harness.machine()}")
    print(f"input: {args.chats} chats x {args.tokens} output tokens (ignore_eos), per run")
    rates: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for round_ in range(args.rounds):
        for dtype in rates:
            run = run_arm(model, dtype, args.chats, args.tokens)
            rate = run["tokens"] / run["seconds"]
            rates[dtype].append(rate)
            print(
                f"round {round_ + 1} {dtype}: {run['seconds']:.2f} s, {rate:.1f} output tok/s; "
                f"seeded answers equal alone and batched: {run['same']}/8"
            )
    best = {dtype: max(values) for dtype, values in rates.items()}
    print(f"best: {json.dumps({k: round(v, 1) for k, v in best.items()})}")
    print(f"ratio float32 / bfloat16: {best['float32'] / best['bfloat16']:.2f}")


if __name__ == "__main__":
    main()
