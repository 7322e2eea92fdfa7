"""Review queues: who reviews what next, with reservations and overlap.

A queue is a frozen selection: its items are written when it is made, in the
results table's order (or, for a pairwise queue, one item per input both
batches answered), so every reviewer walks the same list and a claim is one
index probe. Each item needs `reviewers_per_item` reviewers. Its `open_slots`
counts those still needed less the live reservations; a claim takes a slot
with a conditional UPDATE that only succeeds while one is open, so two
reviewers never hold the same slot, on SQLite or PostgreSQL.

A reservation that runs out is released by the next claim in the queue: the
row goes, and the slot with it. A reviewer who submits late still has the
judgment recorded (nothing typed is lost); the item then counts one reviewer
more than it needed.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django import forms
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from batches.models import Batch, Request
from core.exceptions import ApplicationError, Conflict, NotFound
from core.text import clipped
from curation import judgments, services
from curation.filters import ResultFilter
from curation.models import (
    Comparison,
    ItemReview,
    Judgment,
    QueueItem,
    ReviewQueue,
    Star,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

INSERT_BATCH = 5_000
# A claim that loses its item (the same reviewer in another tab) moves on to the next.
CLAIM_ATTEMPTS = 20


class QueueError(ApplicationError):
    code = "invalid_queue"


class NotAssigned(ApplicationError):
    status = 403
    code = "not_assigned"


# --- Creating ------------------------------------------------------------------


@dataclass
class QueueSpec:
    name: str
    kind: str = ReviewQueue.Kind.RESULTS
    filter_query: str = ""
    compare_batches: tuple[str, ...] = ()  # public ids, pairwise queues
    reviewers: tuple["User", ...] = ()
    reviewers_per_item: int = 1
    instructions: str = ""
    fields: tuple[str, ...] = ()
    blind: bool = True
    reservation_seconds: int = 600


def queue_check(*, spec: QueueSpec, created_by: "User") -> None:
    """Raise QueueError if queue_create would refuse `spec` (the admin's form
    validates with it before saving)."""
    _selection(spec, created_by)


def _selection(spec: QueueSpec, created_by: "User"):
    """The checked spec: (name, fields, filter params, batches, item pairs)."""
    name = spec.name.strip()
    if not name:
        raise QueueError("A queue needs a name.", param="name")
    if len(name) > ReviewQueue.NAME_MAX_LENGTH:
        raise QueueError(
            f"A queue's name is at most {ReviewQueue.NAME_MAX_LENGTH} characters.", param="name"
        )
    if ReviewQueue.objects.filter(name=name).exists():
        raise QueueError(f"A queue named {name!r} exists already.", param="name")
    fields = _fields(spec)
    if not 1 <= spec.reviewers_per_item <= ReviewQueue.MAX_REVIEWERS_PER_ITEM:
        raise QueueError(
            f"Reviewers per item is 1 to {ReviewQueue.MAX_REVIEWERS_PER_ITEM}.",
            param="reviewers_per_item",
        )
    if spec.reviewers and spec.reviewers_per_item > len(spec.reviewers):
        raise QueueError(
            f"Each item needs {spec.reviewers_per_item} reviewers, but only "
            f"{len(spec.reviewers)} are assigned.",
            param="reviewers_per_item",
        )
    if not 30 <= spec.reservation_seconds <= 86_400:
        raise QueueError("A reservation lasts 30 seconds to 24 hours.", param="reservation_seconds")
    if len(spec.instructions) > ReviewQueue.INSTRUCTIONS_MAX_LENGTH:
        raise QueueError(
            f"Instructions are at most {ReviewQueue.INSTRUCTIONS_MAX_LENGTH:,} characters.",
            param="instructions",
        )
    params = QueryDict(spec.filter_query)
    pairs: list[tuple[int, int | None]]
    if spec.kind == ReviewQueue.Kind.PAIRWISE:
        batches = _compare_batches(spec.compare_batches)
        pairs = list(_pairs(batches, params, created_by))
    elif spec.kind == ReviewQueue.Kind.RESULTS:
        batches = []
        pairs = [(pk, None) for pk in _results(params, created_by)]
    else:
        raise QueueError("A queue's kind is results or pairwise.", param="kind")
    if not pairs:
        raise QueueError("The selection holds no results: nothing to review.", param="filter")
    return name, fields, params, batches, pairs


def queue_create(*, spec: QueueSpec, created_by: "User") -> ReviewQueue:
    """Make a queue and its items. Raises QueueError, saying what to change."""
    name, fields, params, batches, pairs = _selection(spec, created_by)
    try:
        return _queue_write(spec, created_by, name, fields, params, batches, pairs)
    except IntegrityError:  # the same name, created meanwhile
        raise QueueError(f"A queue named {name!r} exists already.", param="name") from None


@transaction.atomic
def _queue_write(spec, created_by, name, fields, params, batches, pairs) -> ReviewQueue:
    queue = ReviewQueue.objects.create(
        name=name,
        kind=spec.kind,
        filter_query=params.urlencode(),
        reviewers_per_item=spec.reviewers_per_item,
        instructions=spec.instructions,
        fields=fields,
        blind=spec.blind,
        reservation_seconds=spec.reservation_seconds,
        item_count=len(pairs),
        created_by=created_by,
    )
    queue.reviewers.set(spec.reviewers)
    queue.compare_batches.set(batches)
    for start in range(0, len(pairs), INSERT_BATCH):
        QueueItem.objects.bulk_create(
            QueueItem(
                queue=queue,
                position=start + i + 1,
                request_id=request_id,
                other_id=other_id,
                open_slots=spec.reviewers_per_item,
            )
            for i, (request_id, other_id) in enumerate(pairs[start : start + INSERT_BATCH])
        )
    return queue


def _fields(spec: QueueSpec) -> list[str]:
    if spec.kind == ReviewQueue.Kind.PAIRWISE:
        # The verdict is the work; notes may explain it.
        unknown = set(spec.fields) - {ReviewQueue.Field.NOTES}
        if unknown:
            raise QueueError(
                "A pairwise queue records a verdict (and notes), not "
                f"{', '.join(sorted(unknown))}.",
                param="fields",
            )
        return list(dict.fromkeys(spec.fields))
    unknown = set(spec.fields) - set(ReviewQueue.Field.values)
    if unknown:
        raise QueueError(
            f"Unknown field(s): {', '.join(sorted(unknown))[:200]}. "
            f"Choose among {', '.join(ReviewQueue.Field.values)}.",
            param="fields",
        )
    if not spec.fields:
        raise QueueError("Choose at least one field for reviewers to fill.", param="fields")
    return [f for f in ReviewQueue.Field.values if f in spec.fields]


def _filtered(params: QueryDict, user: "User") -> QuerySet[Request]:
    filters = ResultFilter(params, queryset=Request.objects.all(), user=user)
    if not filters.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in filters.errors.items())
        raise QueueError(f"Invalid filter: {errors}", param="filter")
    results = filters.qs
    if not params.get("status"):
        results = results.filter(status=Request.Status.COMPLETED)
    return results


def _check_size(count: int) -> None:
    if count > ReviewQueue.MAX_ITEMS:
        raise QueueError(
            f"The selection holds more than {ReviewQueue.MAX_ITEMS:,} items; "
            "narrow the filter or split it into several queues.",
            param="filter",
        )


def _results(params: QueryDict, user: "User") -> list[int]:
    ids = list(
        _filtered(params, user)
        .order_by("-pk")
        .values_list("pk", flat=True)[: ReviewQueue.MAX_ITEMS + 1]
    )
    _check_size(len(ids))
    return ids


def _compare_batches(public_ids: tuple[str, ...]) -> list[Batch]:
    public_ids = tuple(dict.fromkeys(public_ids))
    if len(public_ids) != 2:
        raise QueueError("A pairwise queue compares exactly two batches.", param="batches")
    found = {b.public_id: b for b in Batch.objects.filter(public_id__in=public_ids)}
    missing = [i for i in public_ids if i not in found]
    if missing:
        raise NotFound("batch", missing[0], param="batches")
    return [found[i] for i in public_ids]


def _pairs(batches: list[Batch], params: QueryDict, user: "User") -> list[tuple[int, int]]:
    """One pair per input (custom_id) both batches completed, in the first
    batch's line order; the filter narrows the first batch's side."""
    first, second = batches
    answers = Request.objects.filter(
        batch=second, custom_id=OuterRef("custom_id"), status=Request.Status.COMPLETED
    )
    sides = (
        _filtered(params, user)
        .filter(batch=first, status=Request.Status.COMPLETED)
        .annotate(other=answers.values("pk")[:1])
        .filter(other__isnull=False)
        .order_by("line")
        .values_list("pk", "other")[: ReviewQueue.MAX_ITEMS + 1]
    )
    pairs = list(sides)
    _check_size(len(pairs))
    return pairs


# --- Working -------------------------------------------------------------------


def may_work(queue: ReviewQueue, user: "User") -> bool:
    """A queue with reviewers listed is theirs; one without is everyone's."""
    # One query: how many are listed, and whether `user` is among them.
    listed = ReviewQueue.reviewers.through.objects.filter(reviewqueue_id=queue.pk).aggregate(
        anyone=Count("pk"), mine=Count("pk", filter=Q(user_id=user.pk))
    )
    return not listed["anyone"] or bool(listed["mine"])


def _check_assigned(queue: ReviewQueue, user: "User") -> None:
    if not may_work(queue, user):
        raise NotAssigned(
            f"{user.get_username()} is not among the reviewers of queue {queue.name!r}.",
            param="queue",
        )


def reservations_release(*, queue: ReviewQueue, now: datetime | None = None) -> int:
    """Give the slots of reservations that ran out back to their items."""
    now = now or timezone.now()
    expired = ItemReview.objects.filter(
        queue=queue, state=ItemReview.State.PENDING, reserved_until__lt=now
    )
    released = 0
    for pk, item_id in expired.values_list("pk", "item_id")[:1000]:
        with transaction.atomic():
            # Re-checked in the delete: a submit may have landed since the read.
            deleted, _ = expired.filter(pk=pk).delete()
            if deleted:
                QueueItem.objects.filter(pk=item_id).update(
                    open_slots=F("open_slots") + 1, reopened=True
                )
                released += 1
    return released


def claim_next(*, queue: ReviewQueue, reviewer: "User") -> ItemReview | None:
    """The item `reviewer` should work on next in `queue`, reserved for them;
    None when nothing is left for them. A reviewer holding a live reservation
    gets it again (a reload or a retried call does not take a second item)."""
    _check_assigned(queue, reviewer)
    now = timezone.now()
    reservations_release(queue=queue, now=now)
    until = now + timedelta(seconds=queue.reservation_seconds)
    with transaction.atomic():
        held = (
            ItemReview.objects.select_for_update()
            .filter(queue=queue, reviewer=reviewer, state=ItemReview.State.PENDING)
            .order_by("claimed_at")
            .first()
        )
        if held is not None:
            held.reserved_until = until
            held.save(update_fields=["reserved_until"])
            return held
        for _ in range(CLAIM_ATTEMPTS):
            candidate = _candidate(queue, reviewer)
            if candidate is None:
                return None
            item_id, position = candidate
            try:
                with transaction.atomic():
                    taken = QueueItem.objects.filter(pk=item_id, open_slots__gt=0).update(
                        open_slots=F("open_slots") - 1
                    )
                    if taken:
                        return ItemReview.objects.create(
                            item_id=item_id,
                            queue=queue,
                            reviewer=reviewer,
                            position=position,
                            reserved_until=until,
                            claimed_at=now,
                        )
            except IntegrityError:
                continue  # the same reviewer claimed it meanwhile (another tab)
    raise Conflict(
        "The queue is busy: every item tried was taken meanwhile. Try again.",
        code="queue_busy",
    )


def _candidate(queue: ReviewQueue, reviewer: "User") -> tuple[int, int] | None:
    """(id, position) of the first open item `reviewer` has not had, in queue order.

    Every item before a reviewer's frontier (the furthest position claim-next
    served them; submitting or skipping an item never claimed does not move it)
    was theirs or full when they passed it, and only a slot given back
    (reopened) opens it again. So the search, in queue order, is: reopened
    items behind the frontier, then the items past it, each an index range of
    rows that mostly qualify (the order is the same as one scan's); the
    full scan, which passes every open item the reviewer already did (50,000
    of them for a reviewer far ahead of the others), is only the last resort.

    Read inside the claim's transaction, and locked: on PostgreSQL concurrent
    claimers skip each other's candidate (SKIP LOCKED) and spread over the next
    items, instead of all taking the same first item and retrying one by one
    (twenty reviewers made that a herd of seconds); on SQLite the IMMEDIATE
    transaction holds the write lock, so no other claim lands between the read
    and the update.
    """
    mine = ItemReview.objects.filter(item=OuterRef("pk"), reviewer=reviewer)
    frontier = (
        ItemReview.objects.filter(queue=queue, reviewer=reviewer, position__isnull=False)
        .order_by("-position")
        .values_list("position", flat=True)
        .first()
    ) or 0
    open_items = QueueItem.objects.filter(queue=queue, open_slots__gt=0)
    for items in (
        open_items.filter(reopened=True, position__lt=frontier),
        open_items.filter(position__gt=frontier),
        open_items,
    ):
        found = (
            items.exclude(Exists(mine))
            .order_by("position")
            .select_for_update(skip_locked=True)
            .values_list("pk", "position")
            .first()
        )
        if found is not None:
            return found
    return None


@dataclass
class Submission:
    """What a reviewer says about an item; None means "not given"."""

    star: bool | None = None
    changes: dict | None = None  # quality, category, tags, notes
    outcome: str | None = None  # pairwise: winner, tie or both_bad
    winner: str | None = None  # pairwise: "a" (the item's request) or "b" (its other)


def item_get(*, queue: ReviewQueue, item_id: int) -> QueueItem:
    item = (
        QueueItem.objects.filter(queue=queue, pk=item_id)
        .select_related("request__batch", "other__batch")
        .first()
    )
    if item is None:
        raise NotFound("queue item", str(item_id), param="item")
    return item


@transaction.atomic
def item_submit(
    *, queue: ReviewQueue, item_id: int, reviewer: "User", submission: Submission
) -> ItemReview:
    """Record `reviewer`'s work on an item and mark it done for them. Submitting
    again (after going back) edits the judgment; the item is counted once."""
    _check_assigned(queue, reviewer)
    item = item_get(queue=queue, item_id=item_id)
    _check_submission(queue, submission)
    review = ItemReview.objects.select_for_update().filter(item=item, reviewer=reviewer).first()
    if review is None or review.state != ItemReview.State.DONE:
        holds_slot = review is not None and review.state == ItemReview.State.PENDING
        if not holds_slot:
            # Skipped, or a reservation that ran out: take a slot if one is open.
            QueueItem.objects.filter(pk=item.pk, open_slots__gt=0).update(
                open_slots=F("open_slots") - 1
            )
        QueueItem.objects.filter(pk=item.pk).update(done_count=F("done_count") + 1)
        review = review or ItemReview(item=item, queue=queue, reviewer=reviewer)
        review.state = ItemReview.State.DONE
        review.reserved_until = None
        review.finished_at = timezone.now()
        review.save()
    _apply(queue, item, reviewer, submission)
    return review


def _check_submission(queue: ReviewQueue, submission: Submission) -> None:
    allowed = set(queue.fields)
    given = set(submission.changes or {})
    if submission.star is not None:
        given.add(ReviewQueue.Field.STAR)
    extra = given - allowed
    if extra:
        raise QueueError(
            f"Queue {queue.name!r} asks for {', '.join(queue.fields) or 'a verdict'}, "
            f"not {', '.join(sorted(extra))}.",
            param=sorted(extra)[0],
        )
    if queue.kind == ReviewQueue.Kind.PAIRWISE:
        if submission.outcome not in Comparison.Outcome.values:
            raise QueueError(
                "A pairwise item needs an outcome: winner, tie or both_bad.", param="outcome"
            )
        if (submission.outcome == Comparison.Outcome.WINNER) != (submission.winner in ("a", "b")):
            raise QueueError(
                'A winner outcome names the winner, "a" or "b"; tie and both_bad name none.',
                param="winner",
            )
    elif submission.outcome is not None or submission.winner is not None:
        raise QueueError("Only pairwise queues take an outcome.", param="outcome")
    elif not given:
        raise QueueError(
            f"Nothing to record: fill in {', '.join(queue.fields)}, or skip the item.",
            param="fields",
        )


def _apply(queue: ReviewQueue, item: QueueItem, reviewer: "User", submission: Submission):
    if submission.changes:
        judgments.judgment_update(
            request=item.request, reviewer=reviewer, changes=submission.changes
        )
    if submission.star is not None:
        services.star_set(request=item.request, user=reviewer, starred=submission.star)
    if queue.kind == ReviewQueue.Kind.PAIRWISE:
        assert item.other_id is not None  # pairwise items have two sides
        winner_id = {"a": item.request_id, "b": item.other_id}.get(submission.winner or "")
        services.comparison_record(
            candidate_ids=[item.request_id, item.other_id],
            user=reviewer,
            outcome=submission.outcome or "",
            winner_id=winner_id,
            blind=queue.blind,
        )


@transaction.atomic
def item_skip(*, queue: ReviewQueue, item_id: int, reviewer: "User") -> ItemReview:
    """`reviewer` passes on an item: it goes to someone else, never back to them."""
    _check_assigned(queue, reviewer)
    item = item_get(queue=queue, item_id=item_id)
    review = ItemReview.objects.select_for_update().filter(item=item, reviewer=reviewer).first()
    if review is not None and review.state == ItemReview.State.DONE:
        raise Conflict(
            "You have submitted this item; submit again to change your judgment.",
            code="already_done",
            param="item",
        )
    if review is not None and review.state == ItemReview.State.PENDING:
        QueueItem.objects.filter(pk=item.pk).update(open_slots=F("open_slots") + 1, reopened=True)
    review = review or ItemReview(item=item, queue=queue, reviewer=reviewer)
    review.state = ItemReview.State.SKIPPED
    review.reserved_until = None
    review.finished_at = timezone.now()
    review.save()
    return review


# --- Reading -------------------------------------------------------------------


@dataclass
class ItemView:
    """An item as its reviewer sees it: the result(s), and what they said so far."""

    item: QueueItem
    reviewer_id: int
    review: ItemReview | None
    judgment: Judgment | None
    starred: bool
    comparison: Comparison | None

    @property
    def sides(self) -> list[Request]:
        """Pairwise: the two responses in the order this reviewer sees them,
        fixed per reviewer and input, so a reload shows the same order."""
        sides = [self.item.request, self.item.other]
        if _coin(self.item.pk, self.reviewer_id):
            sides.reverse()
        return [side for side in sides if side is not None]


def _coin(item_id: int, user_id: int) -> bool:
    return hashlib.sha256(f"{item_id}:{user_id}".encode()).digest()[0] & 1 == 1


def item_view(*, queue: ReviewQueue, item_id: int, reviewer: "User") -> ItemView:
    item = item_get(queue=queue, item_id=item_id)
    review = ItemReview.objects.filter(item=item, reviewer=reviewer).first()
    judgment = (
        Judgment.objects.filter(request=item.request, reviewer=reviewer, role=Judgment.Role.REVIEW)
        .prefetch_related("tags")
        .first()
    )
    comparison = None
    if item.other_id is not None:
        comparison = Comparison.objects.filter(
            user=reviewer, candidates_key=Comparison.key([item.request_id, item.other_id])
        ).first()
    starred = Star.objects.filter(request=item.request, user=reviewer).exists()
    return ItemView(item, reviewer.pk, review, judgment, starred, comparison)


def queues_for(*, user: "User") -> QuerySet[ReviewQueue]:
    """The queues `user` may work: theirs, and those open to every reviewer."""
    return (
        ReviewQueue.objects.filter(Q(reviewers=user) | Q(reviewers__isnull=True))
        .distinct()
        .order_by("-pk")
    )


@dataclass
class Progress:
    items: int
    complete: int  # items with every reviewer they need
    done: int  # submissions
    skipped: int
    pending: int  # live reservations
    reviewers: list[dict]  # {reviewer, done, skipped, pending}

    @property
    def percent(self) -> int:
        return int(100 * self.complete / self.items) if self.items else 100


def queue_progress(*, queue: ReviewQueue) -> Progress:
    complete = QueueItem.objects.filter(
        queue=queue, done_count__gte=queue.reviewers_per_item
    ).count()
    per_reviewer: dict[str, dict] = {}
    rows = (
        ItemReview.objects.filter(queue=queue)
        .values("reviewer__username", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        name = row["reviewer__username"]
        counts = per_reviewer.setdefault(
            name, {"reviewer": name, "done": 0, "skipped": 0, "pending": 0}
        )
        counts[row["state"]] = row["n"]
    reviewers = sorted(per_reviewer.values(), key=lambda r: (-r["done"], r["reviewer"]))
    return Progress(
        items=queue.item_count,
        complete=complete,
        done=sum(r["done"] for r in reviewers),
        skipped=sum(r["skipped"] for r in reviewers),
        pending=sum(r["pending"] for r in reviewers),
        reviewers=reviewers,
    )


def reviewer_history(*, queue: ReviewQueue, reviewer: "User", limit: int = 50):
    """The items `reviewer` finished in `queue`, latest first (for "back")."""
    return (
        ItemReview.objects.filter(queue=queue, reviewer=reviewer)
        .exclude(state=ItemReview.State.PENDING)
        .select_related("item__request")
        .order_by("-finished_at", "-pk")[:limit]
    )


# --- Overview (the queue list and the dashboard) -------------------------------


@dataclass
class QueueOverview:
    queue: ReviewQueue
    complete: int  # items with every reviewer they need
    mine_done: int  # the viewer's own submissions
    mine_pending: int  # the viewer's live reservation (0 or 1)
    reviewers: list[str]  # assigned usernames; empty: every reviewer
    may_work: bool

    @property
    def percent(self) -> int:
        items = self.queue.item_count
        return int(100 * self.complete / items) if items else 100


def queues_overview(*, user: "User", limit: int = 100) -> list[QueueOverview]:
    """The newest queues with their progress and `user`'s own share of it.

    Cheap however large the queues: the item total is the stored item_count,
    and the rest are three grouped counts: complete items, and `user`'s done
    and pending reviews on the (queue, reviewer, state) index.
    """
    queues = list(ReviewQueue.objects.prefetch_related("reviewers").order_by("-pk")[:limit])
    ids = [queue.pk for queue in queues]
    complete = dict(
        QueueItem.objects.filter(queue__in=ids, done_count__gte=F("queue__reviewers_per_item"))
        .values_list("queue")
        .annotate(n=Count("pk"))
        .order_by()
    )
    mine: dict[tuple[int, str], int] = {
        (queue_id, state): n
        for queue_id, state, n in ItemReview.objects.filter(queue__in=ids, reviewer=user)
        .values_list("queue", "state")
        .annotate(n=Count("pk"))
        .order_by()
    }
    rows = []
    for queue in queues:
        names = sorted(reviewer.get_username() for reviewer in queue.reviewers.all())
        rows.append(
            QueueOverview(
                queue=queue,
                complete=complete.get(queue.pk, 0),
                mine_done=mine.get((queue.pk, ItemReview.State.DONE), 0),
                mine_pending=mine.get((queue.pk, ItemReview.State.PENDING), 0),
                reviewers=names,
                may_work=not names or user.get_username() in names,
            )
        )
    return rows


@dataclass
class SelectionPreview:
    """What a filter selects, in words, and how many results (up to the limit)."""

    words: list[str]
    count: int  # capped at ReviewQueue.MAX_ITEMS + 1
    limit: int = ReviewQueue.MAX_ITEMS

    @property
    def too_many(self) -> bool:
        return self.count > self.limit


def selection_preview(*, filter_query: str, user: "User") -> SelectionPreview:
    """The new-queue form's summary of its filter; raises QueueError for an
    invalid one, as queue_create would."""
    params = QueryDict(filter_query)
    results = _filtered(params, user)
    filters = ResultFilter(params, queryset=Request.objects.none(), user=user)
    words = []
    for name, field in filters.form.fields.items():
        # Plain choices read as their labels; a model choice (a batch, a tag) as its id.
        labels = {}
        if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.ModelChoiceField):
            # django-stubs types choices as any of its accepted inputs; a bound
            # form field's choices are always (value, label) pairs.
            labels = {str(value): str(label) for value, label in field.choices}  # type: ignore[misc,union-attr]
        shown = [
            # Range parts: quality_min=80 reads "min 80".
            f"{key.removeprefix(name).lstrip('_')} {clipped(labels.get(value, value), 80)}".strip()
            for key in params
            if key == name or key.startswith(f"{name}_")
            for value in params.getlist(key)
            if value
        ]
        if shown:
            words.append(f"{field.label or name}: {', '.join(shown)}")
    if not params.get("status"):
        words.append("Status: completed (the default)")
    count = results.order_by()[: ReviewQueue.MAX_ITEMS + 1].count()
    return SelectionPreview(words=words, count=count)
