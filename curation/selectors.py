"""Reads behind the viewer pages."""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.db.models import (
    BigIntegerField,
    BooleanField,
    Count,
    Exists,
    F,
    Func,
    OuterRef,
    Prefetch,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Lower
from django.http import Http404, QueryDict
from django.utils import timezone

from batches.models import Batch, Chunk, Request
from core.exceptions import ApplicationError
from curation.filters import ResultFilter
from curation.models import Annotation, Comparison, Preference, Star, Tag, annotation_of

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


# --- The results table's order ------------------------------------------------


@dataclass(frozen=True)
class ResultSort:
    """An order of the results table: a column (None: by id, the order results
    were written in) and a direction. Rows without a value in the column come
    last in both directions."""

    key: str | None
    descending: bool

    @property
    def param(self) -> str:
        """The `sort` query parameter that asks for this order ("" for the default)."""
        if self.key is None:
            return ""
        return f"-{self.key}" if self.descending else self.key


# The sortable columns and the field each reads. Quality is the derived shared
# metadata (Annotation); the others are the result's own columns, each with a
# (column, id) index (batches_request_tokens, _latency, _finished).
SORT_FIELDS = {
    "quality": "annotation__quality",
    "tokens": "completion_tokens",
    "latency": "latency_ms",
    "date": "finished_at",
}
_SORT_MODEL_FIELDS = {
    "quality": Annotation._meta.get_field("quality"),
    **{key: Request._meta.get_field(SORT_FIELDS[key]) for key in ("tokens", "latency", "date")},
}
DEFAULT_SORT = ResultSort(key=None, descending=True)  # newest first


def result_sort(value: str | None) -> ResultSort:
    """The order a `sort` parameter names ("quality", "-latency", …); anything
    else is the default, newest first."""
    if not value or len(value) > 20:
        return DEFAULT_SORT
    key = value.removeprefix("-")
    if key not in SORT_FIELDS:
        return DEFAULT_SORT
    return ResultSort(key=key, descending=value.startswith("-"))


# A cursor is the sort value and the id of the row a page starts or ends at:
# "85_1234", "_1234" for a row without a value, and a bare id for the default
# order (so links from before sorting existed still work). Dates travel as
# microseconds since the epoch (no characters a URL must escape).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_MAX = 2**63 - 1  # a bigger number cannot be bound to a query parameter
_CURSOR = re.compile(r"(?:(\d{1,19})?_)?(\d{1,19})")


@dataclass(frozen=True)
class Cursor:
    value: int | datetime | None
    pk: int


def cursor_encode(sort: ResultSort, value: int | datetime | None, pk: int) -> str:
    if sort.key is None:
        return str(pk)
    if isinstance(value, datetime):
        value = (value - _EPOCH) // timedelta(microseconds=1)
    return f"{'' if value is None else value}_{pk}"


def cursor_decode(sort: ResultSort, text: str | int | None) -> Cursor | None:
    """The cursor in `text`, or None when there is none or it does not fit
    `sort` (a hand-edited URL, a link from another order): then the page
    starts from the top."""
    if text is None or text == "":
        return None
    match = _CURSOR.fullmatch(str(text))
    if match is None:
        return None
    value_text, pk_text = match.groups()
    pk = int(pk_text)
    if pk > _INT_MAX:
        return None
    if sort.key is None:
        return Cursor(value=None, pk=pk) if "_" not in str(text) else None
    if "_" not in str(text):
        return None
    if value_text is None:
        return Cursor(value=None, pk=pk)
    number = int(value_text)
    if number > _INT_MAX:
        return None
    if sort.key == "date":
        try:
            return Cursor(value=_EPOCH + timedelta(microseconds=number), pk=pk)
        except OverflowError:
            return None
    return Cursor(value=number, pk=pk)


class _RowCompare(Func):
    """`(column, id) < (value, pk)` (or `>`): a row-value comparison, which
    PostgreSQL and SQLite both answer from a (column, id) index as a range, so
    a page deep in the table costs what the first one does, however many rows
    share a value."""

    output_field = BooleanField()

    def __init__(self, column: str, id_column: str, op: str, cursor: Cursor, field):
        super().__init__(
            F(column),
            F(id_column),
            Value(cursor.value, output_field=field),
            Value(cursor.pk, output_field=BigIntegerField()),
        )
        self.op = op

    def as_sql(
        self, compiler, connection, function=None, template=None, arg_joiner=None, **extra_context
    ):
        parts = [compiler.compile(e) for e in self.get_source_expressions()]
        sql = f"({parts[0][0]}, {parts[1][0]}) {self.op} ({parts[2][0]}, {parts[3][0]})"
        return sql, [param for _, params in parts for param in params]


def _segment(
    queryset: QuerySet[Request],
    sort: ResultSort,
    *,
    with_value: bool,
    descending: bool,
    cursor: Cursor | None,
    limit: int,
) -> list[tuple[int, int | datetime | None]]:
    """(id, value) of up to `limit` rows with (or without) a value in the sort
    column, in travel order (`descending` or not), after `cursor`."""
    assert sort.key is not None
    field_name = SORT_FIELDS[sort.key]
    if not with_value:
        if sort.key == "quality":
            # Results without a scored annotation, as NOT EXISTS: PostgreSQL
            # estimates that anti-join well and walks the ids, where for a LEFT
            # JOIN ... IS NULL it expects one row and joins every result.
            scored = Annotation.objects.filter(request=OuterRef("pk"), quality__isnull=False)
            rows = queryset.exclude(Exists(scored))
        else:
            rows = queryset.filter(**{f"{field_name}__isnull": True})
        return _by_id(rows, descending=descending, cursor=cursor, limit=limit)
    rows = queryset.filter(**{f"{field_name}__isnull": False})
    # Quality is walked by the annotation's own columns, (quality, request_id),
    # which its quality index holds in that order (SQLite keeps the rowid, here
    # the request's id, in every index); the result's id is the same number.
    id_name = "annotation__request_id" if sort.key == "quality" else "pk"
    if cursor is not None:
        op, bound = ("<", "lte") if descending else (">", "gte")
        # The plain bound lets an index on the column alone (PostgreSQL's on
        # the annotation's quality) narrow the range too; the row comparison,
        # which a (column, id) index answers alone, does the rest.
        rows = rows.filter(**{f"{field_name}__{bound}": cursor.value}).filter(
            _RowCompare(field_name, id_name, op, cursor, _SORT_MODEL_FIELDS[sort.key])
        )
    sign = "-" if descending else ""
    ordered = rows.order_by(f"{sign}{field_name}", f"{sign}{id_name}")
    return list(ordered.values_list(id_name, field_name)[:limit])


def _by_id(
    rows: QuerySet[Request], *, descending: bool, cursor: Cursor | None, limit: int
) -> list[tuple[int, int | datetime | None]]:
    if cursor is not None:
        rows = rows.filter(pk__lt=cursor.pk) if descending else rows.filter(pk__gt=cursor.pk)
    ids = rows.order_by("-pk" if descending else "pk").values_list("pk", flat=True)[:limit]
    return [(pk, None) for pk in ids]


def _walk(
    queryset: QuerySet[Request],
    sort: ResultSort,
    *,
    cursor: Cursor | None,
    forward: bool,
    limit: int,
) -> list[tuple[int, int | datetime | None]]:
    """Up to `limit` (id, value) rows next to `cursor`, in travel order:
    forward follows the sort, backward goes against it."""
    descending = sort.descending == forward
    if sort.key is None:
        return _by_id(queryset, descending=descending, cursor=cursor, limit=limit)
    # The order is every row with a value, then every row without one; going
    # backward, the reverse. Start in the part the cursor is in.
    parts = [True, False] if forward else [False, True]
    if cursor is not None:
        parts = parts[parts.index(cursor.value is not None) :]
    found: list[tuple[int, int | datetime | None]] = []
    for with_value in parts:
        found += _segment(
            queryset,
            sort,
            with_value=with_value,
            descending=descending,
            cursor=cursor
            if (cursor is not None and with_value == (cursor.value is not None))
            else None,
            limit=limit - len(found),
        )
        if len(found) >= limit:
            break
    return found


@dataclass
class ResultsPage:
    rows: list[Request]
    count: int  # capped at COUNT_CAP + 1 ("more than 10,000")
    newer: str | None  # cursor for the previous page ("newer" in the default order)
    older: str | None  # cursor for the next page
    sort: ResultSort = DEFAULT_SORT

    @property
    def count_is_capped(self) -> bool:
        return self.count > COUNT_CAP


def results_page(
    *,
    queryset: QuerySet[Request],
    sort: ResultSort = DEFAULT_SORT,
    before: str | int | None = None,
    after: str | int | None = None,
) -> ResultsPage:
    """One page of results in `sort` order (newest first by default), by
    keyset: every page costs the same, however deep, and the total is counted
    only up to COUNT_CAP.

    `before` is the cursor of the last row of the page before (the next page
    starts after it); `after` that of the first row of the page after (going
    back). One row past the page tells whether there is more in the direction
    of travel; the other direction holds at least the row the cursor came from.
    A cursor that does not parse, belongs to another order, or has nothing
    beyond it, is ignored: the first page is shown.
    """
    after_cursor = cursor_decode(sort, after)
    before_cursor = cursor_decode(sort, before) if after_cursor is None else None

    def cursor(row: tuple[int, int | datetime | None]) -> str:
        return cursor_encode(sort, row[1], row[0])

    if after_cursor is not None:
        found = _walk(queryset, sort, cursor=after_cursor, forward=False, limit=PAGE_SIZE + 1)
        more = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE][::-1]
        newer = cursor(found[0]) if more else None
        older = cursor(found[-1]) if found else None
    else:
        found = _walk(queryset, sort, cursor=before_cursor, forward=True, limit=PAGE_SIZE + 1)
        more = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
        newer = cursor(found[0]) if before_cursor is not None and found else None
        older = cursor(found[-1]) if more else None
    if not found and (after_cursor or before_cursor):
        # Nothing beyond a cursor: a hand-made one, or rows deleted meanwhile.
        # The first page says more than an empty one.
        return results_page(queryset=queryset, sort=sort)
    ids = [pk for pk, _ in found]
    by_id = {row.pk: row for row in with_curation(Request.objects.filter(pk__in=ids))}
    rows = [by_id[pk] for pk in ids if pk in by_id]
    count = queryset.order_by()[: COUNT_CAP + 1].count()
    return ResultsPage(rows=rows, count=count, newer=newer, older=older, sort=sort)


def result_get(*, pk: int) -> Request:
    result = with_curation(Request.objects.filter(pk=pk)).first()
    if result is None:
        raise Http404("No such result")
    return result


def result_neighbours(
    *, queryset: QuerySet[Request], pk: int, sort: ResultSort = DEFAULT_SORT
) -> tuple[int | None, int | None]:
    """(newer, older) result ids around `pk` in the filtered table's order:
    the rows the table shows just before and just after it."""
    value: int | datetime | None = None
    if sort.key is not None:
        field_name = SORT_FIELDS[sort.key]
        value = Request.objects.filter(pk=pk).values_list(field_name, flat=True).first()
    here = Cursor(value=value, pk=pk)
    newer = _walk(queryset, sort, cursor=here, forward=False, limit=1)
    older = _walk(queryset, sort, cursor=here, forward=True, limit=1)
    return (newer[0][0] if newer else None), (older[0][0] if older else None)


# --- Bulk actions on the table's rows ---------------------------------------

BULK_MAX = 500  # rows per bulk action: ten pages of the table


def results_by_ids(*, ids: list[int]) -> QuerySet[Request]:
    """The results `ids` name, every one of them: ids that name no result are
    an error that lists them, so a bulk action changes all or nothing."""
    wanted = list(dict.fromkeys(ids))
    found = set(Request.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        shown = ", ".join(str(pk) for pk in missing[:10])
        if len(missing) > 10:
            shown += f" and {len(missing) - 10} more"
        raise ApplicationError(
            f"No such result: {shown}. Nothing was changed.", param="result_ids", code="not_found"
        )
    return Request.objects.filter(pk__in=wanted)


class ResultState(TypedDict):
    result_id: int
    starred: bool  # by the user asking
    stars: list[dict]
    quality: int | None
    category: str
    category_label: str
    tags: list[str]


def result_states(*, ids: list[int], user: "User") -> list[ResultState]:
    """What the table shows of each result's curation, for redrawing its rows
    after a bulk action: stars (and whether `user`'s is among them) and the
    shared metadata."""
    states: list[ResultState] = []
    for result in with_curation(Request.objects.filter(pk__in=ids)).order_by("-pk"):
        stars = list(result.stars.all())
        annotation = annotation_of(result)
        states.append(
            {
                "result_id": result.pk,
                "starred": any(star.user_id == user.pk for star in stars),
                "stars": [
                    {"user": star.user.get_username(), "at": star.created_at.isoformat()}
                    for star in stars
                ],
                "quality": annotation.quality if annotation else None,
                "category": annotation.category if annotation else "",
                "category_label": annotation.get_category_display() if annotation else "",
                "tags": [tag.name for tag in annotation.tags.all()] if annotation else [],
            }
        )
    return states


# --- Compare -------------------------------------------------------------------


@dataclass
class CompareSide:
    label: str  # "A", "B", …: how a blind page names the response
    result: Request


@dataclass
class CompareItem:
    custom_id: str
    messages: list[dict]  # the anchor's transcript: {role, content} as text
    sides: list[CompareSide]  # one per batch that holds the custom_id
    line: int
    previous: str | None
    next: str | None
    verdict: Comparison | None  # the current user's verdict on these responses
    winner_id: int | None  # the current user's pick among the responses
    blind: bool  # names hidden until the verdict, and the sides shuffled
    revealed: bool  # the names may show: not blind, or the user has given a verdict

    @property
    def responses(self) -> list[Request]:
        return [side.result for side in self.sides]


def compare_batches(public_ids: list[str]) -> list[Batch]:
    found = {b.public_id: b for b in Batch.objects.filter(public_id__in=public_ids)}
    missing = [i for i in public_ids if i not in found]
    if missing:
        raise Http404(f"No such batch: {', '.join(missing)}")
    return [found[i] for i in dict.fromkeys(public_ids)]


def blind_order(responses: list[Request], *, user: "User", custom_id: str) -> list[Request]:
    """`responses` in an order that looks random for each input but is the same
    every time this reviewer sees it: by a hash of the reviewer, the input and
    the response (not the batches' order in the URL, which tells them apart)."""

    def rank(result: Request) -> bytes:
        return hashlib.sha256(f"{user.pk}\0{custom_id}\0{result.pk}".encode()).digest()

    return sorted(responses, key=rank)


def compare_item(
    *, batches: list[Batch], custom_id: str | None, user: "User", blind: bool = False
) -> CompareItem | None:
    """The responses of every batch to one input (a custom_id present in all of
    them), with the neighbouring custom_ids in the first batch's line order and
    the user's verdict on them. Blind, the responses come in an order of their
    own per input and reviewer, and their names stay hidden until the verdict."""
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
    if blind:
        responses = blind_order(responses, user=user, custom_id=anchor.custom_id)
    ids = [r.pk for r in responses]
    verdict = Comparison.objects.filter(user=user, candidates_key=Comparison.key(ids)).first()
    if verdict is not None:
        winner_id = verdict.winner_id
    else:
        # A pick among some of these responses (an older page, a pairwise queue).
        winner_id = (
            Preference.objects.filter(user=user, chosen_id__in=ids, rejected_id__in=ids)
            .values_list("chosen_id", flat=True)
            .first()
        )
    return CompareItem(
        custom_id=anchor.custom_id,
        messages=anchor.transcript,
        sides=[CompareSide(label=chr(ord("A") + i), result=r) for i, r in enumerate(responses)],
        line=anchor.line,
        previous=previous,
        next=following,
        verdict=verdict,
        winner_id=winner_id,
        blind=blind,
        revealed=not blind or verdict is not None or winner_id is not None,
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
