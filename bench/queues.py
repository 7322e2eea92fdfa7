"""Review queues under 20 concurrent reviewers, with 200,000 results in the database.

    .venv/bin/python bench/queues.py [--database postgres] [--results 200000] [--think 2]

Generates the viewer benchmark's 200,000 completed results (bench/viewer.py), makes
a queue over all of them with two reviewers per item and 20 assigned reviewer
accounts, then runs 20 worker processes at once (spawned: each its own Django and
database connection, so nothing serialises on one interpreter's lock). Each worker
loops claim_next -> item_submit (quality, category, a tag, sometimes a star), every
5th item a skip instead, and times each service call on its own.

Phase "front": a fresh queue. Phase "deep": a second queue of the same results
where 100,000 items are already done (written with bulk inserts, as after weeks of
work) and one reviewer is far ahead of the others: they alone did the next 50,000,
so each of their claims must pass 50,000 open items they have done. That reviewer
claims alone first, then the 20 workers run as in the front phase.

Afterwards the integrity of both queues is checked: no reviewer reviewed an item
twice, no item has more done reviews than it needs, and every item's counters
(done_count, open_slots) agree with its review rows.

Targets: claim-next p95 <= 50 ms and submit p95 <= 50 ms. Exits 1 when a target is
missed or the integrity check fails (a call that failed counts as a failure).
By default workers run with no pause between calls: a saturation test, where
latency is mostly waiting for the two cores and the write lock. --think S makes
each worker spend a random time (mean S seconds) on an item between claim and
submit, as a person reading it or an agent asking a model does.
"""

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import harness
import psycopg

TARGET_MS = 50.0
POSTGRES = "postgres://postgres@127.0.0.1:5432/bs_bench"
REVIEWERS = 20
CATEGORIES = ["excellent", "good", "needs_improvement"]
TAGS = ["senior", "python", "leadership", "remote", "junior"]
DEEP_DONE = 100_000  # items every reviewer they need has done
DEEP_AHEAD = 50_000  # the next items, done by the far-ahead reviewer alone
HOLE_EVERY = 997  # in the done part, an item with one review of two (a skip, a release)
INSERT_BATCH = 5_000


def database_url(choice: str) -> str | None:
    """None for SQLite (in the scratch DATA_DIR), or a fresh PostgreSQL database:
    DATABASE_URL's if it names a benchmark database, else bs_bench."""
    if choice == "sqlite":
        return None
    url = os.environ.get("DATABASE_URL") or POSTGRES
    name = url.rsplit("/", 1)[1].split("?")[0]
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark recreates its database")
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return url


# --- Workers (separate processes) ----------------------------------------------


def work(
    queue_id: int,
    username: str,
    claims: int,
    skip_every: int,
    think: float,
    seed: int,
    start,
    out,
) -> None:
    """One reviewer: claim, then submit or skip, `claims` times or until the queue
    has nothing left for them. Puts {kind: [ms, ...], "errors": Counter} on `out`."""
    # Spawned: nothing is inherited but os.environ, which setup_django filled in.
    sys.path.insert(0, str(harness.ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from curation.models import ReviewQueue
    from curation.queues import Submission, claim_next, item_skip, item_submit

    connections.close_all()
    rng = random.Random(seed)
    queue = ReviewQueue.objects.get(pk=queue_id)
    reviewer = get_user_model().objects.get(username=username)
    timings: dict[str, list[float]] = {"claim": [], "submit": [], "skip": []}
    errors: Counter = Counter()
    # Warm the connection (and SQLite's page cache) outside the timings.
    queue.reviewers.filter(pk=reviewer.pk).exists()
    out.put("ready")
    start.wait()
    for n in range(claims):
        started = time.perf_counter()
        try:
            review = claim_next(queue=queue, reviewer=reviewer)
        except Exception as error:  # counted and reported, the loop goes on
            errors[f"claim: {type(error).__name__}: {str(error)[:80]}"] += 1
            continue
        timings["claim"].append((time.perf_counter() - started) * 1000)
        if review is None:
            break  # nothing left for this reviewer
        if think:
            # Reading the item (a person) or asking a model about it (an agent).
            time.sleep(rng.expovariate(1 / think))
        started = time.perf_counter()
        try:
            if skip_every and n % skip_every == skip_every - 1:
                item_skip(queue=queue, item_id=review.item_id, reviewer=reviewer)
                kind = "skip"
            else:
                submission = Submission(
                    star=True if rng.random() < 0.25 else None,
                    changes={
                        "quality": rng.randint(0, 100),
                        "category": rng.choice(CATEGORIES),
                        "tags": [rng.choice(TAGS)],
                    },
                )
                item_submit(
                    queue=queue, item_id=review.item_id, reviewer=reviewer, submission=submission
                )
                kind = "submit"
        except Exception as error:
            errors[f"submit: {type(error).__name__}: {str(error)[:80]}"] += 1
            continue
        timings[kind].append((time.perf_counter() - started) * 1000)
    connections.close_all()
    out.put({"reviewer": username, **timings, "errors": errors})


def run_workers(
    queue_id: int, usernames: list[str], claims: int, skip_every: int, think: float
) -> dict:
    """All workers at once; returns the timings merged, per reviewer, and the wall time."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    processes = [
        context.Process(
            target=work,
            args=(queue_id, name, claims, skip_every, think, i, start, out),
            daemon=True,
        )
        for i, name in enumerate(usernames)
    ]
    for process in processes:
        process.start()
    # Every worker has set itself up (Django, connection) before the clock starts:
    # spawned interpreters take seconds on two cores, which is not claim latency.
    for _ in processes:
        assert out.get(timeout=600) == "ready"
    began = time.perf_counter()
    start.set()
    reports = [out.get(timeout=1800) for _ in processes]
    wall = time.perf_counter() - began
    for process in processes:
        process.join(timeout=60)
    merged: dict = {"claim": [], "submit": [], "skip": [], "errors": Counter()}
    for report in reports:
        for kind in ("claim", "submit", "skip"):
            merged[kind] += report[kind]
        merged["errors"] += report["errors"]
    merged["by_reviewer"] = {r["reviewer"]: r for r in reports}
    merged["wall"] = wall
    return merged


# --- Setting up ----------------------------------------------------------------


def reviewers_create() -> list:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    return [users.create_user(f"reviewer-{i:02}", is_staff=True) for i in range(1, REVIEWERS + 1)]


def queue_make(name: str, reviewers: list) -> tuple[object, float]:
    from django.contrib.auth import get_user_model

    from curation.queues import QueueSpec, queue_create

    owner = get_user_model().objects.get(username="aris")
    started = time.perf_counter()
    queue = queue_create(
        spec=QueueSpec(
            name=name,
            reviewers=tuple(reviewers),
            reviewers_per_item=2,
            instructions="Score the answer 0-100; pick a category and a tag.",
            fields=("star", "quality", "category", "tags"),
        ),
        created_by=owner,
    )
    return queue, time.perf_counter() - started


def deep_simulate(queue, reviewers: list, *, done: int, ahead: int, hole_every: int) -> None:
    """Weeks of work, written in bulk: positions 1..`done` done by two reviewers
    each, but every `hole_every`-th (one review done, the far-ahead reviewer
    skipped it: a hole the others fill first); the next `ahead` positions done by
    reviewers[0], the far-ahead reviewer, alone."""
    from django.db import connection, transaction
    from django.utils import timezone

    from curation.models import ItemReview, QueueItem

    now = timezone.now()
    far, others = reviewers[0], reviewers[1:]
    items = dict(
        QueueItem.objects.filter(queue=queue, position__lte=done + ahead).values_list(
            "position", "pk"
        )
    )
    holes = set(range(hole_every, done + 1, hole_every))
    with transaction.atomic():
        QueueItem.objects.filter(queue=queue, position__lte=done).update(done_count=2, open_slots=0)
        # A skip gives the slot back, which marks the item reopened.
        QueueItem.objects.filter(queue=queue, position__in=holes).update(
            done_count=1, open_slots=1, reopened=True
        )
        QueueItem.objects.filter(queue=queue, position__gt=done, position__lte=done + ahead).update(
            done_count=1, open_slots=1
        )

    def review(position: int, reviewer, state: str = "done"):
        return ItemReview(
            item_id=items[position],
            queue=queue,
            reviewer=reviewer,
            state=state,
            position=position,  # served by claim-next: the reviewer's frontier
            claimed_at=now,
            finished_at=now,
        )

    def rows():
        for position in range(1, done + 1):
            if position in holes:
                yield review(position, others[position % len(others)])
                yield review(position, far, "skipped")
            else:
                yield review(position, reviewers[position % REVIEWERS])
                yield review(position, reviewers[(position + 1) % REVIEWERS])
        for position in range(done + 1, done + ahead + 1):
            yield review(position, far)

    batch = []
    for row in rows():
        batch.append(row)
        if len(batch) == INSERT_BATCH:
            ItemReview.objects.bulk_create(batch)
            batch = []
    ItemReview.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does for a live database


def claims_alone(queue, reviewer, count: int) -> list[float]:
    """`reviewer` claims and submits `count` items with nobody else working."""
    from curation.queues import Submission, claim_next, item_submit

    timings = []
    claim_next(queue=queue, reviewer=reviewer)  # warm; the reservation is returned below
    for _ in range(count):
        started = time.perf_counter()
        review = claim_next(queue=queue, reviewer=reviewer)
        timings.append((time.perf_counter() - started) * 1000)
        assert review is not None
        item_submit(
            queue=queue,
            item_id=review.item_id,
            reviewer=reviewer,
            submission=Submission(changes={"quality": 50, "category": "good"}),
        )
    return timings


# --- Checking ------------------------------------------------------------------


def integrity(queue) -> list[str]:
    """What is wrong with `queue`'s counters and review rows (nothing, we hope)."""
    from django.db.models import Count, F, Q

    from curation.models import ItemReview, QueueItem

    problems = []
    twice = (
        ItemReview.objects.filter(queue=queue)
        .values("item_id", "reviewer_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} (item, reviewer) pairs reviewed twice")
    # No reservation ran out during the run (they last 10 minutes), so no late
    # submit can have added a reviewer beyond those an item needs.
    counted = QueueItem.objects.filter(queue=queue).annotate(
        done=Count("reviews", filter=Q(reviews__state="done")),
        pending=Count("reviews", filter=Q(reviews__state="pending")),
    )
    over = counted.filter(done__gt=queue.reviewers_per_item).count()
    if over:
        problems.append(f"{over} items with more than {queue.reviewers_per_item} done reviews")
    wrong_done = counted.exclude(done_count=F("done")).count()
    if wrong_done:
        problems.append(f"{wrong_done} items whose done_count differs from their done reviews")
    wrong_open = counted.exclude(
        open_slots=queue.reviewers_per_item - F("done") - F("pending")
    ).count()
    if wrong_open:
        problems.append(f"{wrong_open} items whose open_slots != needed - done - pending")
    return problems


# --- Reporting -----------------------------------------------------------------


def p(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def row(label: str, values: list[float], wall: float | None) -> str:
    rate = f"{len(values) / wall:8.1f}" if wall else f"{'':>8}"
    return (
        f"{label:38} {len(values):6} {p(values, 50):7.1f} {p(values, 95):7.1f} "
        f"{p(values, 99):7.1f} {max(values, default=float('nan')):7.1f} {rate}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="postgres" if os.environ.get("DATABASE_URL") else "sqlite",
    )
    parser.add_argument("--workers", type=int, default=REVIEWERS, help="at most 20")
    parser.add_argument("--claims", type=int, default=200, help="claims per worker and phase")
    parser.add_argument("--skip-every", type=int, default=5)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds (exponential) a worker spends on an item between claim and "
        "submit; 0 (the default) is a saturation test",
    )
    args = parser.parse_args()
    if not 1 <= args.workers <= REVIEWERS:
        parser.error(f"--workers is 1 to {REVIEWERS}")
    deep_sizes = {"done": DEEP_DONE, "ahead": DEEP_AHEAD, "hole_every": HOLE_EVERY}
    if args.results < (DEEP_DONE + DEEP_AHEAD) * 1.2:
        # A small development run scales the deep phase down with it.
        done = args.results // 2
        deep_sizes = {"done": done, "ahead": args.results // 4, "hole_every": max(2, done // 100)}

    from viewer import generate, setup_django

    data_dir = Path(tempfile.mkdtemp(prefix="batchserver-bench-queues-"))
    setup_django(data_dir, database_url(args.database))
    started = time.perf_counter()
    generate(args.results)
    reviewers = reviewers_create()
    generated = time.perf_counter() - started
    names = [r.username for r in reviewers[: args.workers]]

    front, front_made = queue_make("bench front", reviewers)
    print(f"front queue: {front.item_count} items made in {front_made:.1f} s", flush=True)
    front_run = run_workers(front.pk, names, args.claims, args.skip_every, args.think)

    deep, deep_made = queue_make("bench deep", reviewers)
    started = time.perf_counter()
    deep_simulate(deep, reviewers, **deep_sizes)
    simulated = time.perf_counter() - started
    print(
        f"deep queue: made in {deep_made:.1f} s, history in {simulated:.1f} s: {deep_sizes}",
        flush=True,
    )
    alone = claims_alone(deep, reviewers[0], 60)
    deep_run = run_workers(deep.pk, names, args.claims, args.skip_every, args.think)

    problems = [f"front: {x}" for x in integrity(front)] + [f"deep: {x}" for x in integrity(deep)]

    from django.db import connection

    print()
    print(f"machine: {harness.machine()}; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"date: {date.today()}; command: {' '.join(sys.argv)}; data: {data_dir}")
    print(
        f"database: {args.database} ({connection.vendor}); {args.results} results generated "
        f"in {generated:.0f} s; {args.workers} workers x {args.claims} claims per phase, "
        f"every {args.skip_every}th a skip; think {args.think} s; 2 reviewers per item"
    )
    header = f"{'call':38} {'count':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'per s':>8}"
    print(header + "   (ms; per s = calls / phase wall time)")
    checks: list[tuple[str, list[float]]] = []
    for phase, run in (("front", front_run), ("deep", deep_run)):
        print(row(f"{phase}: claim_next", run["claim"], run["wall"]))
        print(row(f"{phase}: item_submit", run["submit"], run["wall"]))
        print(row(f"{phase}: item_skip", run["skip"], run["wall"]))
        checks += [(f"{phase}: claim_next", run["claim"]), (f"{phase}: item_submit", run["submit"])]
    far = deep_run["by_reviewer"].get(names[0], {"claim": []})["claim"]
    print(row(f"deep: claim_next, {names[0]} (far ahead)", far, None))
    print(row(f"deep: claim_next, {names[0]} alone", alone, None))
    checks += [("deep: far-ahead claim_next", far), ("deep: far-ahead alone", alone)]
    for phase, run in (("front", front_run), ("deep", deep_run)):
        for error, n in run["errors"].most_common():
            print(f"{phase} error x{n}: {error}")
            problems.append(f"{phase}: {n} x {error}")
    missed = [name for name, values in checks if not values or p(values, 95) > TARGET_MS]
    for name in missed:
        print(f"MISSED: {name} p95 > {TARGET_MS:.0f} ms")
    for problem in problems:
        print(f"INTEGRITY: {problem}")
    if not problems:
        print(
            "integrity: no item reviewed twice by one reviewer, none over-reviewed, counters agree"
        )
    sys.exit(1 if missed or problems else 0)


if __name__ == "__main__":
    main()
