"""Viewer latency with 200,000 results in the database.

    .venv/bin/python bench/viewer.py [--database postgres] [--results 200000]

Generates four batches of 50,000 completed results (two models answering the same
custom_ids twice over), 10,000 stars by three reviewers and 20,000 annotations,
then drives the viewer (gunicorn, as deployed) with a logged-in session and
reports p50/p95 latency of: the results table with filters, the table sorted
by quality, tokens, latency and date (first and deep pages, alone and with a
filter), the compare page, the review page, the star toggle and the bulk star
and tag of 50 rows. Targets: p95 <= 200 ms for pages, <= 100 ms for a sorted
page, and <= 50 ms for a star.
"""

import argparse
import logging
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
import httpx
import psutil

SAMPLES = 60


def vocabulary(rng: random.Random, size: int = 3000) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf frequencies, like real text: a few words are in
    almost every document, most are rare."""
    syllables = ["ka", "lo", "mi", "ren", "dor", "ta", "vi", "son", "el", "ar", "ne", "pu", "ix"]
    words = list(
        dict.fromkeys("".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2))
    )[:size]
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1 / rank
        cumulative.append(total)
    return words, cumulative


def setup_django(data_dir: Path, database_url: str | None) -> None:
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.setdefault("QUICKSTART", "true")  # plain HTTP on localhost
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    # The generated batches are the tiny model's (an export of request bodies
    # checks that their model is served).
    os.environ.setdefault("MODELS", f"tiny-chat={data_dir / 'models' / 'tiny-chat'}")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
    sys.path.insert(0, str(harness.ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def generate(results: int, seed: int = 0) -> dict:
    """Write batches, results, stars and annotations; return what the probes need."""
    import orjson
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from batches.models import Batch, File, Request
    from curation.models import Annotation, Star, Tag

    rng = random.Random(seed)
    users = get_user_model().objects
    owner = users.create_user("aris")
    reviewers = [
        users.create_user(n, password="bench-pw", is_staff=True) for n in ("carol", "dave", "erin")
    ]
    now = timezone.now()
    per_batch = results // 4
    batches = []
    words, cumulative = vocabulary(rng)

    def text(k: int) -> str:
        return " ".join(rng.choices(words, cum_weights=cumulative, k=k))

    system = "You evaluate candidates for a recruiting team. " + text(150)
    for model in ("tiny-chat", "other-model", "tiny-chat", "other-model"):
        input_file = File.objects.create(
            owner=owner, purpose="batch", filename="in.jsonl", bytes=1, content="x"
        )
        batches.append(
            Batch.objects.create(
                owner=owner,
                endpoint="/v1/chat/completions",
                input_file=input_file,
                status="completed",
                model=model,
                expires_at=now,
                total_requests=per_batch,
                completed_requests=per_batch,
            )
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
    finished_at = connection.ops.adapt_datetimefield_value(now)
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {Request._meta.db_table} ({', '.join(columns)}) VALUES ({placeholders})"
    for index, batch in enumerate(batches):
        group = index // 2  # batches 0/1 and 2/3 answer the same custom_ids
        rows = []
        for line in range(1, per_batch + 1):
            user = text(120)
            answer = text(60)
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
                "model": batch.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360},
            }
            rows.append(
                (
                    batch.pk,
                    line,
                    f"g{group}-cand-{line}",
                    orjson.dumps(body).decode(),
                    "completed",
                    200,
                    orjson.dumps(response).decode(),
                    300,
                    rng.randint(20, 400),  # completion tokens, for the sorted table
                    rng.randint(200, 5000),  # latency_ms
                    1,
                    finished_at,  # one value for all: the worst case for a keyset's ties
                )
            )
            if len(rows) == 5000:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany(sql, rows)
                rows = []
        if rows:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)

    ids = list(Request.objects.values_list("pk", flat=True))
    starred = rng.sample(ids, 10_000)
    Star.objects.bulk_create(Star(request_id=pk, user=rng.choice(reviewers)) for pk in starred)
    tags = [
        Tag.objects.create(name=n) for n in ("senior", "python", "leadership", "remote", "junior")
    ]
    annotated = rng.sample(ids, 20_000)
    Annotation.objects.bulk_create(
        Annotation(
            request_id=pk,
            quality=rng.randint(0, 100),
            category=rng.choice(["excellent", "good", "needs_improvement"]),
            edited_by=rng.choice(reviewers),
            edited_at=now,
        )
        for pk in annotated
    )
    Annotation.tags.through.objects.bulk_create(
        Annotation.tags.through(annotation_id=pk, tag_id=rng.choice(tags).pk) for pk in annotated
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does for a live database
    return {
        "batches": [b.public_id for b in batches],
        "ids": ids,
        "lines": per_batch,
        "rare_words": f"{words[400]} {words[700]}",  # each in ~2% of documents
        "common_word": words[0],  # in nearly every document
        # The date sort's cursor value: microseconds since the epoch.
        "finished_us": (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1),
    }


@contextmanager
def viewer_server():
    """The viewer under gunicorn as deployed (one worker), on a free port; yields
    its base URL and process once it answers."""
    port = harness.free_port()
    env = {
        **os.environ,
        "VIEWER_BIND": f"127.0.0.1:{port}",
        "VIEWER_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, str(harness.ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
        env=env,
        check=True,
    )
    config = str(harness.ROOT / "deploy/gunicorn/viewer.py")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", config, "--access-logfile", "/dev/null"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/admin/login/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, psutil.Process(server.pid)
    finally:
        server.terminate()
        server.wait()


def log_in(client: httpx.Client, base: str) -> str:
    client.get(f"{base}/admin/login/")
    token = client.cookies["csrftoken"]
    response = client.post(
        f"{base}/admin/login/?next=/",
        data={
            "username": "carol",
            "password": "bench-pw",
            "csrfmiddlewaretoken": token,
            "next": "/",
        },
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client.cookies["csrftoken"]


def timed(call, samples: int = SAMPLES) -> list[float]:
    call()  # warm: caches, connections
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = call()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (response.status_code, response.text[:300])
    return timings


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="batchserver-bench-viewer-"))
    setup_django(data_dir, harness.database_url(args.database))
    started = time.perf_counter()
    world = generate(args.results)
    generated = time.perf_counter() - started

    with viewer_server() as (base, _):
        rng = random.Random(1)
        with httpx.Client(timeout=30) as client:
            token = log_in(client, base)
            a, b = world["batches"][0], world["batches"][1]
            middle = world["ids"][len(world["ids"]) // 2]

            def compare():
                custom_id = f"g0-cand-{rng.randint(1, world['lines'])}"
                return client.get(f"{base}/compare/?batch={a}&batch={b}&custom_id={custom_id}")

            def star():
                return client.post(
                    f"{base}/api/gold-star",
                    json={"result_id": rng.choice(world["ids"]), "starred": rng.random() < 0.5},
                    headers={"X-CSRFToken": token},
                )

            probes = {
                "table, no filter": lambda: client.get(f"{base}/results/"),
                "table, model + starred": lambda: client.get(
                    f"{base}/results/?model=tiny-chat&starred=yes"
                ),
                "table, batch + quality >= 80": lambda: client.get(
                    f"{base}/results/?batch={b}&quality_min=80"
                ),
                "table, category + tag": lambda: client.get(
                    f"{base}/results/?category=excellent&tag=senior"
                ),
                "table, starred by me, deep page": lambda: client.get(
                    f"{base}/results/?starred=me&before={world['ids'][len(world['ids']) // 2]}"
                ),
                "table, search (two rare words)": lambda: client.get(
                    f"{base}/results/?q={world['rare_words']}"
                ),
                "table, search (the commonest word)": lambda: client.get(
                    f"{base}/results/?q={world['common_word']}"
                ),
                "sorted: -quality": lambda: client.get(f"{base}/results/?sort=-quality"),
                "sorted: -quality, deep page": lambda: client.get(
                    f"{base}/results/?sort=-quality&before=50_{middle}"
                ),
                "sorted: -quality, deep unscored page": lambda: client.get(
                    f"{base}/results/?sort=-quality&before=_{middle}"
                ),
                "sorted: quality + model, deep page": lambda: client.get(
                    f"{base}/results/?sort=quality&model=other-model&before=50_{middle}"
                ),
                "sorted: -tokens": lambda: client.get(f"{base}/results/?sort=-tokens"),
                "sorted: tokens, deep page": lambda: client.get(
                    f"{base}/results/?sort=tokens&before=200_{middle}"
                ),
                "sorted: -latency + starred, deep": lambda: client.get(
                    f"{base}/results/?sort=-latency&starred=yes&before=2000_{middle}"
                ),
                "sorted: latency, batch, back": lambda: client.get(
                    f"{base}/results/?sort=latency&batch={b}&after=2000_{middle}"
                ),
                "sorted: date, deep page": lambda: client.get(
                    f"{base}/results/?sort=date&before={world['finished_us']}_{middle}"
                ),
                "review page, sorted by -quality": lambda: client.get(
                    f"{base}/results/{rng.choice(world['ids'])}/?sort=-quality&model=tiny-chat"
                ),
                "compare page": compare,
                "compare page, blind": lambda: client.get(
                    f"{base}/compare/?batch={a}&batch={b}&blind=1"
                    f"&custom_id=g0-cand-{rng.randint(1, world['lines'])}"
                ),
                "review page in a filter": lambda: client.get(
                    f"{base}/results/{rng.choice(world['ids'])}/?model=other-model&starred=yes"
                ),
                "dashboard": lambda: client.get(f"{base}/"),
                "star toggle (POST)": star,
                "bulk star 50 (POST)": lambda: client.post(
                    f"{base}/api/results/bulk-star",
                    json={"result_ids": rng.sample(world["ids"], 50), "starred": True},
                    headers={"X-CSRFToken": token},
                ),
                "bulk tag 50 (POST)": lambda: client.post(
                    f"{base}/api/results/bulk-tag",
                    json={"result_ids": rng.sample(world["ids"], 50), "tag": "bench"},
                    headers={"X-CSRFToken": token},
                ),
            }
            results = {name: timed(call) for name, call in probes.items()}

    print(f"machine: {harness.machine()}")
    print(f"database: {args.database}; {args.results} results generated in {generated:.0f} s")
    print(f"{'probe':38} {'p50 ms':>8} {'p95 ms':>8}  ({SAMPLES} sequential requests each)")
    for name, timings in results.items():
        print(f"{name:38} {p(timings, 50):8.1f} {p(timings, 95):8.1f}")


if __name__ == "__main__":
    main()
