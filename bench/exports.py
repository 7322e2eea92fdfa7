"""Exports of 10,000 gold-starred examples in each format, through the viewer.

    .venv/bin/python bench/exports.py [--database postgres] [--rows 10000]

Generates two batches answering the same inputs (two models), stars and
annotates every result of the first, and records a preference of each over the
second; then makes every format with POST /api/export-gold-star and downloads
it from its download_url, under gunicorn (as deployed), and reports time and
the viewer process's peak RSS, next to the same export of a quarter of the rows
(memory must not follow the row count). Target: <= 3 s per format, flat memory.
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import harness
import httpx
from viewer import log_in, setup_django, viewer_server

FORMATS = {
    "icl": {"format": "icl", "limit": "{rows}"},
    "finetuning": {"format": "finetuning"},
    "preference": {"format": "preference"},
    "csv": {"format": "csv"},
    "batch_input": {"format": "batch_input", "target_model": "tiny-chat"},
}


def generate(rows: int) -> list[str]:
    import orjson
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from batches.models import Batch, File, Request
    from curation.models import Annotation, Preference, Star

    rng = random.Random(0)
    users = get_user_model().objects
    owner = users.create_user("aris")
    carol = users.create_user("carol", password="bench-pw", is_staff=True)
    now = timezone.now()
    batches = []
    for model in ("tiny-chat", "other-model"):
        input_file = File.objects.create(
            owner=owner, purpose="batch", filename="x", bytes=1, content="x"
        )
        batches.append(
            Batch.objects.create(
                owner=owner,
                endpoint="/v1/chat/completions",
                input_file=input_file,
                status="completed",
                model=model,
                expires_at=now,
                total_requests=rows,
                completed_requests=rows,
            )
        )
    system = "You evaluate candidates for a recruiting team. " + " ".join(
        rng.choices(harness._WORDS, k=150)
    )
    columns = [
        "batch_id",
        "line",
        "custom_id",
        "body",
        "status",
        "status_code",
        "response",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "attempts",
        "finished_at",
    ]
    sql = (
        f"INSERT INTO {Request._meta.db_table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    finished_at = connection.ops.adapt_datetimefield_value(now)
    for batch in batches:
        values = []
        for line in range(1, rows + 1):
            user = " ".join(rng.choices(harness._WORDS, k=300))
            answer = " ".join(rng.choices(harness._WORDS, k=80))
            body = {
                "model": batch.model,
                "temperature": 0.2,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
            }
            response = {
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
            }
            values.append(
                (
                    batch.pk,
                    line,
                    f"cand-{line}",
                    orjson.dumps(body).decode(),
                    "completed",
                    200,
                    orjson.dumps(response).decode(),
                    700,
                    100,
                    900,
                    1,
                    finished_at,
                )
            )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, values)
    first = dict(Request.objects.filter(batch=batches[0]).values_list("custom_id", "pk"))
    second = dict(Request.objects.filter(batch=batches[1]).values_list("custom_id", "pk"))
    Star.objects.bulk_create(Star(request_id=pk, user=carol) for pk in first.values())
    Annotation.objects.bulk_create(
        Annotation(
            request_id=pk,
            quality=rng.randint(0, 100),
            category="good",
            notes="ok",
            edited_by=carol,
            edited_at=now,
        )
        for pk in first.values()
    )
    Preference.objects.bulk_create(
        Preference(chosen_id=first[c], rejected_id=second[c], user=carol) for c in first
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [b.public_id for b in batches]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="batchserver-bench-exports-"))
    setup_django(data_dir, harness.database_url(args.database))
    generate(args.rows)

    results = []
    with viewer_server() as (base, process), httpx.Client(timeout=120) as client:
        csrf_token = log_in(client, base)
        viewer = {"viewer": process}
        for name, options in FORMATS.items():
            measured = {}
            for label, limit in (("quarter", args.rows // 4), ("all", args.rows)):
                # A quarter of the rows: ICL by its limit, the others by
                # quality (scores are uniform over 0-100).
                body = {key: value.format(rows=limit) for key, value in options.items()}
                if name != "icl" and label == "quarter":
                    body["quality_max"] = "24"
                with harness.RssSampler(viewer) as rss:
                    started = time.perf_counter()
                    size = 0
                    created = client.post(
                        f"{base}/api/export-gold-star",
                        json=body,
                        headers={"X-CSRFToken": csrf_token},
                    )
                    assert created.status_code == 201, created.text[:300]
                    with client.stream(
                        "GET", f"{base}{created.json()['download_url']}"
                    ) as response:
                        assert response.status_code == 200, response.read()[:300]
                        for block in response.iter_bytes():
                            size += len(block)
                    elapsed = time.perf_counter() - started
                measured[label] = (elapsed, size, rss.peak["viewer"])
            results.append((name, measured))

    print(f"machine: {harness.machine()}")
    print(f"database: {args.database}; {args.rows} starred results and preference pairs")
    header = f"{'format':12} {'rows':>6} {'time':>8} {'MB':>7} {'peak RSS':>9}"
    print(f"{header} | quarter: {'time':>7} {'peak RSS':>9}")
    for name, measured in results:
        elapsed, size, peak = measured["all"]
        q_elapsed, _, q_peak = measured["quarter"]
        print(
            f"{name:12} {args.rows:6} {elapsed:7.2f}s {size / 1e6:7.1f} {peak / 2**20:7.0f}MiB |"
            f"          {q_elapsed:6.2f}s {q_peak / 2**20:7.0f}MiB"
        )


if __name__ == "__main__":
    main()
