"""The daily retention purge over 200,000 results, 10% of them curated.

    .venv/bin/python bench/purge.py [--database postgres] [--results 200000]

Generates the viewer benchmark's data (four batches of 50,000 completed results,
10,000 stars and 20,000 annotations), moves every batch past RETENTION_DAYS, then
runs `manage.py purge_expired --dry-run` and `manage.py purge_expired` as the
scheduler would, reporting each one's wall time and peak RSS, and checks that
exactly the curated results are left.
"""

import argparse
import os
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import harness
import psutil
import viewer


def run_purge(data_dir: Path, database_url: str | None, *args: str) -> tuple[float, int, str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    if database_url:
        env["DATABASE_URL"] = database_url
    started = time.perf_counter()
    process = subprocess.Popen(
        [harness.PYTHON, str(harness.ROOT / "manage.py"), "purge_expired", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    with harness.RssSampler({"purge": psutil.Process(process.pid)}) as sampler:
        stdout, _ = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"purge_expired failed ({process.returncode})")
    return elapsed, sampler.peak["purge"], stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--results", type=int, default=200_000)
    options = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="batchserver-bench-purge-"))
    database_url = harness.database_url(options.database)
    viewer.setup_django(data_dir, database_url)
    from django.utils import timezone

    from batches.models import Batch, Request
    from batches.purge import curated_requests

    print(harness.machine())
    started = time.perf_counter()
    viewer.generate(options.results)
    print(f"generated {options.results:,} results in {time.perf_counter() - started:.0f} s")
    Batch.objects.update(created_at=timezone.now() - timedelta(days=31))
    curated = curated_requests().count()

    for label, args in (("dry run", ("--dry-run",)), ("purge", ())):
        elapsed, peak, report = run_purge(data_dir, database_url, *args)
        print(f"{label}: {elapsed:.1f} s, peak RSS {peak / 2**20:.0f} MiB: {report}")
    left = Request.objects.count()
    assert left == curated, (left, curated)
    print(f"left: {left:,} results, all curated")


if __name__ == "__main__":
    main()
