"""The agreement pages with a 200,000-result queue, 20,000 items of it judged by 2-3 reviewers.

    .venv/bin/python bench/agreement.py [--database postgres] [--results 200000]

Generates the viewer benchmark's 200,000 completed results (bench/viewer.py), makes
one queue over all of them (three reviewers per item, every field) with the real
queue service, then writes, with bulk inserts as after weeks of work, 20,000 items
each submitted by two or three of six reviewers: their judgments (scores around a
per-item truth, so alpha is neither 0 nor 1), some stars, the derived annotations,
and 500 adjudications. Then drives the viewer (gunicorn, as deployed) with a
logged-in session and reports p50/p95 of: the queue's agreement page, the
agreement index, the disagreement list (first and a deep page), and, in process,
the selectors alone. Target: the queue's agreement page p95 <= 300 ms. Exits 1
when it is missed.
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import harness
import psycopg
import viewer

TARGET_MS = 300.0
POSTGRES = "postgres://postgres@127.0.0.1:5432/bs_bench_agreement"
JUDGED_ITEMS = 20_000
REVIEWERS = ["carol", "dave", "erin", "frank", "grace", "heidi"]
CATEGORIES = ["excellent", "good", "needs_improvement"]
ADJUDICATED = 500
BATCH = 5_000


def database_url(choice: str) -> str | None:
    """None for SQLite (in the scratch DATA_DIR), or a fresh PostgreSQL database of
    this benchmark's own (other benchmarks may be running beside it)."""
    if choice == "sqlite":
        return None
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS bs_bench_agreement")
        db.execute("CREATE DATABASE bs_bench_agreement")
    return POSTGRES


def judge(seed: int = 0) -> dict:
    """The queue over every result, and 20,000 of its items judged by 2-3 reviewers."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import F
    from django.utils import timezone

    from curation import judgments
    from curation.models import ItemReview, Judgment, QueueItem, Star
    from curation.queues import QueueSpec, queue_create

    rng = random.Random(seed)
    users = get_user_model().objects
    # viewer.generate made carol, dave and erin (password bench-pw).
    people = [
        users.get_or_create(username=name, defaults={"is_staff": True})[0] for name in REVIEWERS
    ]
    started = time.perf_counter()
    queue = queue_create(
        spec=QueueSpec(
            name="agreement bench",
            fields=("star", "quality", "category", "tags", "notes"),
            reviewers_per_item=3,
        ),
        created_by=people[0],
    )
    made = time.perf_counter() - started
    items = list(
        QueueItem.objects.filter(queue=queue)
        .order_by("position")
        .values_list("pk", "request_id")[:JUDGED_ITEMS]
    )
    now = timezone.now()
    reviews, judged, stars, counts = [], [], [], []
    for item_id, request_id in items:
        truth = rng.randint(0, 100)
        who = rng.sample(people, rng.choice([2, 2, 3]))
        counts.append((item_id, len(who)))
        for person in who:
            quality = max(0, min(100, truth + rng.randint(-20, 20)))
            category = CATEGORIES[min(2, (100 - quality) // 34)]
            if rng.random() < 0.15:
                category = rng.choice(CATEGORIES)
            reviews.append(
                ItemReview(
                    item_id=item_id,
                    queue=queue,
                    reviewer=person,
                    state=ItemReview.State.DONE,
                    claimed_at=now,
                    finished_at=now,
                )
            )
            judged.append(
                Judgment(
                    request_id=request_id,
                    reviewer=person,
                    quality=quality,
                    category=category,
                    created_at=now,
                    updated_at=now,
                )
            )
            if quality >= 85 and rng.random() < 0.8:
                stars.append(Star(request_id=request_id, user=person))
    ItemReview.objects.bulk_create(reviews, batch_size=BATCH)
    Judgment.objects.bulk_create(judged, batch_size=BATCH)
    Star.objects.bulk_create(stars, batch_size=BATCH, ignore_conflicts=True)
    for reviewers in (2, 3):
        ids = [item_id for item_id, n in counts if n == reviewers]
        for start in range(0, len(ids), BATCH):
            QueueItem.objects.filter(pk__in=ids[start : start + BATCH]).update(
                done_count=reviewers, open_slots=F("open_slots") - reviewers
            )
    request_ids = [request_id for _, request_id in items]
    for start in range(0, len(request_ids), 1000):
        judgments.annotations_derive(request_ids[start : start + 1000])
    settled = rng.sample(request_ids, ADJUDICATED)
    Judgment.objects.bulk_create(
        Judgment(
            request_id=request_id,
            reviewer=people[0],
            role=Judgment.Role.ADJUDICATION,
            quality=70,
            category="good",
            created_at=now,
            updated_at=now,
        )
        for request_id in settled
    )
    judgments.annotations_derive(settled)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "queue": queue.pk,
        "queue_create_s": made,
        "reviews": len(reviews),
        "judgments": len(judged),
        "stars": len(stars),
        # Half-way through the judged items (positions start at 1).
        "deep_after": len(items) // 2,
    }


def in_process(queue_id: int, deep_after: int) -> dict[str, list[float]]:
    """The selectors alone (no HTTP, no template): where the time goes."""
    from curation import agreement
    from curation.models import ReviewQueue

    queue = ReviewQueue.objects.get(pk=queue_id)

    def timed(call, samples: int = 20) -> list[float]:
        call()
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    return {
        "queue_agreement()": timed(lambda: agreement.queue_agreement(queue=queue)),
        "disagreements(), first page": timed(lambda: agreement.disagreements(queue=queue)),
        "disagreements(), deep page": timed(
            lambda: agreement.disagreements(queue=queue, after=deep_after)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--reuse", type=Path, help="a DATA_DIR an earlier SQLite run left: skip generating"
    )
    args = parser.parse_args()

    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="batchserver-bench-agreement-"))
    viewer.setup_django(data_dir, None if args.reuse else database_url(args.database))
    started = time.perf_counter()
    if args.reuse:
        from curation.models import ItemReview, Judgment, ReviewQueue, Star

        queue = ReviewQueue.objects.get(name="agreement bench")
        world = {
            "queue": queue.pk,
            "queue_create_s": 0.0,
            "reviews": ItemReview.objects.filter(queue=queue).count(),
            "judgments": Judgment.objects.filter(role="review").count(),
            "stars": Star.objects.count(),
            "deep_after": JUDGED_ITEMS // 2,
        }
    else:
        viewer.generate(args.results)
        world = judge()
    generated = time.perf_counter() - started
    print(f"data: {data_dir}", flush=True)
    queue = world["queue"]
    deep = world["deep_after"]
    selectors = in_process(queue, deep)
    for name, timings in selectors.items():
        print(f"{name:34} {viewer.p(timings, 50):8.1f} {viewer.p(timings, 95):8.1f}", flush=True)

    import httpx

    with viewer.viewer_server() as (base, _), httpx.Client(timeout=60) as client:
        viewer.log_in(client, base)
        probes = {
            "agreement page (queue)": f"{base}/agreement/queues/{queue}/",
            "agreement index": f"{base}/agreement/",
            "disagreements, first page": f"{base}/agreement/queues/{queue}/disagreements/",
            "disagreements, deep page": (
                f"{base}/agreement/queues/{queue}/disagreements/?quality_gap=20&after={deep}"
            ),
        }
        pages = {
            name: viewer.timed(lambda url=url: client.get(url), samples=30)
            for name, url in probes.items()
        }

    print(f"machine: {harness.machine()}")
    print(
        f"database: {args.database}; {args.results} results, one queue over all of them "
        f"(queue_create {world['queue_create_s']:.1f} s); {JUDGED_ITEMS} items judged "
        f"({world['reviews']} reviews, {world['judgments']} judgments, {world['stars']} stars, "
        f"{ADJUDICATED} settled); generated in {generated:.0f} s"
    )
    print(f"{'probe':34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, timings in {**pages, **selectors}.items():
        print(f"{name:34} {viewer.p(timings, 50):8.1f} {viewer.p(timings, 95):8.1f}")
    p95 = viewer.p(pages["agreement page (queue)"], 95)
    verdict = "met" if p95 <= TARGET_MS else "MISSED"
    print(f"target: agreement page p95 <= {TARGET_MS:.0f} ms: {verdict} ({p95:.1f} ms)")
    if p95 > TARGET_MS:
        sys.exit(1)


if __name__ == "__main__":
    main()
