"""Reads behind the viewer pages."""

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Count, Exists, F, OuterRef, Prefetch, QuerySet, Sum
from django.db.models.functions import Lower
from django.http import Http404, QueryDict
from django.utils import timezone

from batches.models import Batch, Chunk, Request
from curation.filters import ResultFilter
from curation.models import Annotation, Preference, Star, Tag

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PAGE_SIZE = 50
COUNT_CAP = 10_000


def results_filter(*, params: QueryDict, user: "User") -> ResultFilter:
    return ResultFilter(params, queryset=Request.objects.all(), user=user)


def with_curation(queryset: QuerySet[Request]) -> QuerySet[Request]:
    """Results with what every page shows beside them: batch, annotation, stars."""
    return queryset.select_related("batch", "annotation", "annotation__edited_by").prefetch_related(
        Prefetch("stars", queryset=Star.objects.select_related("user").order_by("created_at")),
        "annotation__tags",
    )


@dataclass
class ResultsPage:
    rows: list[Request]
    count: int  # capped at COUNT_CAP + 1 ("more than 10,000")
    newer: int | None  # cursor for the previous (newer) page
    older: int | None  # cursor for the next (older) page

    @property
    def count_is_capped(self) -> bool:
        return self.count > COUNT_CAP


def results_page(
    *, queryset: QuerySet[Request], before: int | None = None, after: int | None = None
) -> ResultsPage:
    """One page of results, newest first, by keyset: every page costs the same,
    however deep, and the total is counted only up to COUNT_CAP.

    One row past the page tells whether there is more in the direction of
    travel; the other direction holds at least the row the cursor came from.
    """
    if after is not None:
        ids = list(
            queryset.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[: PAGE_SIZE + 1]
        )
        more = len(ids) > PAGE_SIZE
        ids = ids[:PAGE_SIZE][::-1]
        newer, older = (ids[0] if more else None), (ids[-1] if ids else None)
    else:
        page = queryset.filter(pk__lt=before) if before is not None else queryset
        ids = list(page.order_by("-pk").values_list("pk", flat=True)[: PAGE_SIZE + 1])
        more = len(ids) > PAGE_SIZE
        ids = ids[:PAGE_SIZE]
        newer = ids[0] if before is not None and ids else None
        older = ids[-1] if more else None
    rows = list(with_curation(Request.objects.filter(pk__in=ids)).order_by("-pk"))
    count = queryset.order_by()[: COUNT_CAP + 1].count()
    return ResultsPage(rows=rows, count=count, newer=newer, older=older)


def result_get(*, pk: int) -> Request:
    result = with_curation(Request.objects.filter(pk=pk)).first()
    if result is None:
        raise Http404("No such result")
    return result


def result_neighbours(*, queryset: QuerySet[Request], pk: int) -> tuple[int | None, int | None]:
    """(newer, older) result ids around `pk` in the filtered, newest-first order."""
    newer = queryset.filter(pk__gt=pk).order_by("pk").values_list("pk", flat=True).first()
    older = queryset.filter(pk__lt=pk).order_by("-pk").values_list("pk", flat=True).first()
    return newer, older


# --- Compare -------------------------------------------------------------------


@dataclass
class CompareItem:
    custom_id: str
    messages: list[dict]  # the anchor's transcript: {role, content} as text
    responses: list[Request]  # one per batch that holds the custom_id, in batch order
    line: int
    previous: str | None
    next: str | None
    winner_id: int | None  # the current user's pick among the responses


def compare_batches(public_ids: list[str]) -> list[Batch]:
    found = {b.public_id: b for b in Batch.objects.filter(public_id__in=public_ids)}
    missing = [i for i in public_ids if i not in found]
    if missing:
        raise Http404(f"No such batch: {', '.join(missing)}")
    return [found[i] for i in dict.fromkeys(public_ids)]


def compare_item(
    *, batches: list[Batch], custom_id: str | None, user: "User"
) -> CompareItem | None:
    """The responses of every batch to one input (a custom_id present in all of
    them), with the neighbouring custom_ids in the first batch's line order."""
    shared = Request.objects.filter(batch=batches[0])
    for other in batches[1:]:
        shared = shared.filter(
            Exists(Request.objects.filter(batch=other, custom_id=OuterRef("custom_id")))
        )
    anchor = (
        shared.filter(custom_id=custom_id).first() if custom_id else shared.order_by("line").first()
    )
    if anchor is None:
        return None
    previous = (
        shared.filter(line__lt=anchor.line)
        .order_by("-line")
        .values_list("custom_id", flat=True)
        .first()
    )
    following = (
        shared.filter(line__gt=anchor.line)
        .order_by("line")
        .values_list("custom_id", flat=True)
        .first()
    )
    by_batch = {
        r.batch_id: r
        for r in with_curation(
            Request.objects.filter(batch__in=batches, custom_id=anchor.custom_id)
        )
    }
    responses = [by_batch[b.pk] for b in batches if b.pk in by_batch]
    ids = [r.pk for r in responses]
    winner_id = (
        Preference.objects.filter(user=user, chosen_id__in=ids, rejected_id__in=ids)
        .values_list("chosen_id", flat=True)
        .first()
    )
    return CompareItem(
        custom_id=anchor.custom_id,
        messages=anchor.transcript,
        responses=responses,
        line=anchor.line,
        previous=previous,
        next=following,
        winner_id=winner_id,
    )


def compare_choices() -> QuerySet[Batch]:
    """Batches worth comparing: finished or running, newest first."""
    return Batch.objects.exclude(
        status__in=[Batch.Status.VALIDATING, Batch.Status.FAILED]
    ).order_by("-pk")[:100]


def comparable_batches(result: Request) -> list[Batch]:
    """The other batches among the compare page's choices that answered the same
    input (custom_id): each lookup is one probe of the (batch, custom_id) index."""
    answered = Request.objects.filter(batch=OuterRef("pk"), custom_id=result.custom_id)
    choices = compare_choices().values("pk")
    return list(
        Batch.objects.filter(pk__in=choices)
        .exclude(pk=result.batch_id)
        .filter(Exists(answered))
        .order_by("-pk")
    )


# --- Dashboard -----------------------------------------------------------------


@dataclass
class Dashboard:
    batches: list[Batch]
    totals: dict
    starred_results: int
    stars: int
    annotated: int
    stars_per_reviewer: list[dict]
    throughput: list[tuple[str, int]]  # (hour label, requests finished)
    quality_histogram: list[tuple[str, int]]  # (range label, results)


def dashboard(*, hours: int = 24) -> Dashboard:
    totals = Batch.objects.aggregate(
        requests=Sum("total_requests"),
        completed=Sum("completed_requests"),
        failed=Sum("failed_requests"),
        output_tokens=Sum("output_tokens"),
    )
    return Dashboard(
        batches=_recent_batches(),
        totals={key: value or 0 for key, value in totals.items()},
        starred_results=Star.objects.values("request_id").distinct().count(),
        stars=Star.objects.count(),
        annotated=Annotation.objects.count(),
        stars_per_reviewer=list(
            Star.objects.values(reviewer=F("user__username"))
            .annotate(stars=Count("id"))
            .order_by("-stars", "reviewer")
        ),
        throughput=_throughput(hours),
        quality_histogram=_quality_histogram(),
    )


def _recent_batches(limit: int = 20) -> list[Batch]:
    """The newest batches, each with its input file and how many of its results
    are starred (by anyone) and annotated: two grouped queries over the small
    curation tables."""
    batches = list(Batch.objects.select_related("owner", "input_file").order_by("-pk")[:limit])
    ids = [batch.pk for batch in batches]
    starred = dict(
        Star.objects.filter(request__batch__in=ids)
        .values_list("request__batch")
        .annotate(n=Count("request", distinct=True))
    )
    annotated = dict(
        Annotation.objects.filter(request__batch__in=ids)
        .values_list("request__batch")
        .annotate(n=Count("request"))
    )
    for batch in batches:
        batch.starred_count = starred.get(batch.pk, 0)  # type: ignore[attr-defined]
        batch.annotated_count = annotated.get(batch.pk, 0)  # type: ignore[attr-defined]
    return batches


def _throughput(hours: int) -> list[tuple[str, int]]:
    """Requests finished per hour over the last `hours`, from chunk completions
    (a few hundred rows, not one per request)."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    buckets = {start + timedelta(hours=i): 0 for i in range(hours)}
    finished = Chunk.objects.filter(finished_at__gte=start, status=Chunk.Status.DONE)
    for finished_at, size in finished.values_list("finished_at", "size"):
        assert finished_at is not None  # filtered on finished_at__gte
        hour = finished_at.replace(minute=0, second=0, microsecond=0)
        # A worker whose clock runs ahead, or a chunk that finished after this
        # hour began to be read, is later than the last bucket: count it there.
        buckets[min(hour, now)] += size
    return [(hour.strftime("%H:00"), count) for hour, count in buckets.items()]


def _quality_histogram() -> list[tuple[str, int]]:
    bins = [0] * 10  # 0-9, 10-19, ..., 90-100
    per_score = Annotation.objects.filter(quality__isnull=False).values("quality")
    for row in per_score.annotate(n=Count("pk")).order_by():
        bins[min(row["quality"] // 10, 9)] += row["n"]
    return [(f"{i * 10}-{i * 10 + 9 if i < 9 else 100}", n) for i, n in enumerate(bins)]


class BatchProgress(TypedDict):
    public_id: str
    status: str
    total_requests: int
    completed_requests: int
    failed_requests: int


def batch_progress(*, public_ids: list[str]) -> list[BatchProgress]:
    return list(
        Batch.objects.filter(public_id__in=public_ids).values(
            "public_id", "status", "total_requests", "completed_requests", "failed_requests"
        )
    )


def tag_suggestions(*, prefix: str, limit: int = 10) -> list[str]:
    tags = Tag.objects.order_by(Lower("name"))
    if prefix:
        tags = tags.filter(name__istartswith=prefix)
    return list(tags.values_list("name", flat=True)[:limit])
