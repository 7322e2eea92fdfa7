"""GET /v1/batches/{id} latency with 50 concurrent pollers while a batch runs.

    .venv/bin/python bench/polling.py [--pollers 50] [--interval 0.5] [--engine vllm]

A 20,000-request batch runs on the tiny model (the real vLLM engine, sharing
this machine's CPUs with the API, as on a one-host deployment); meanwhile each
poller calls batches.retrieve through the official SDK every `interval`
seconds (plain HTTP, to keep client-side parsing out of the figure). `serve`
runs the engine cluster at ENGINE_NICE. Target: p99 <= 50 ms.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import harness
import httpx

DURATION = 20.0


async def poll(server, batch_id: str, pollers: int, interval: float):
    """`pollers` clients on one event loop, each polling every `interval` seconds.

    Plain HTTP on one thread keeps this process's own CPU use, and thread
    scheduling, out of the figures as far as possible: it shares the machine's
    two cores with the server (Aris polls from its own hosts).
    """
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + DURATION
    limits = httpx.Limits(max_connections=pollers)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=10, limits=limits
    ) as client:

        async def poller(offset: float):
            await asyncio.sleep(offset)
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    (await client.get(f"/batches/{batch_id}")).raise_for_status()
                except httpx.HTTPError as error:
                    errors.append(str(error))
                else:
                    latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

        await asyncio.gather(*(poller(i * interval / pollers) for i in range(pollers)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    path = Path(tempfile.mkdtemp()) / "input.jsonl"
    with open(path, "w") as out:
        import json

        for i in range(20_000):
            # On the test engine each request sleeps, so the batch lasts without
            # using the CPU: the API's own latency, for comparison.
            pause = "[[sleep:0.002]] " if args.engine == "test" else ""
            messages = [{"role": "user", "content": f"{pause}Evaluate candidate {i}."}]
            line = harness.chat_line(
                f"c{i}", messages, model="tiny-chat", max_tokens=32, ignore_eos=True
            )
            out.write(json.dumps(line) + "\n")

    # gunicorn logs each request's own duration too: the server's share of the
    # latency, apart from this process's (it shares the machine's two cores).
    timing = {"GUNICORN_CMD_ARGS": "--access-logformat 'TIMING %(D)s %(r)s'"}
    with harness.stack(
        database_url=args.database_url,
        only=["api", "control", "engine"],
        env={"ENGINE": args.engine, **timing},
    ) as server:
        server.manage("make_tiny_model", "--if-missing")
        client = server.client()
        batch, _, _ = harness.submit(client, path, {"in_progress", "failed"})
        assert batch.status == "in_progress", batch.errors
        # Let the engine worker load the model and get going.
        harness.wait_for_status(client, batch.id, {"in_progress"})
        while client.batches.retrieve(batch.id).request_counts.completed == 0:
            time.sleep(0.2)

        before = client.batches.retrieve(batch.id).request_counts.completed
        latencies, errors = asyncio.run(poll(server, batch.id, args.pollers, args.interval))
        after = client.batches.retrieve(batch.id)
        assert after.status == "in_progress", "the batch ended before the pollers did"

    server_side = [
        int(line.split()[1]) / 1000
        for line in (server.data_dir / "serve.log").read_text().splitlines()
        if line.startswith("TIMING") and f"GET /v1/batches/{batch.id} " in line
    ]
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    inside = statistics.quantiles(server_side, n=100, method="inclusive")
    print(f"machine: {harness.machine()}")
    print(
        f"{args.pollers} pollers, one retrieve each every {args.interval} s for {DURATION:.0f} s, "
        f"engine {args.engine} running the batch"
    )
    print(f"requests: {len(latencies)} ({len(errors)} errors)")
    p50, p95, p99 = quantiles[49], quantiles[94], quantiles[98]
    print(f"latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  of which in the server: p50 {inside[49]:.1f} ms, p95 {inside[94]:.1f} ms, "
        f"p99 {inside[98]:.1f} ms"
    )
    print(f"batch progress meanwhile: {after.request_counts.completed - before} requests")


if __name__ == "__main__":
    main()
