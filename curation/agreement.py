"""Agreement between reviewers, and the items they disagree on (reads only).

An item's reviewers are those who submitted it in the queue (its ItemReview is
done); what each of them said is their own REVIEW judgment of the result (for
the fields the queue asks for), whether they starred it, and, in a pairwise
queue, their verdict on the two responses. Work done outside the queue (the
review page, the table) by someone who did not submit the item there is not
counted: agreement is about the queue's overlap. Adjudications are never
counted either: they settle a disagreement, they do not take part in it.

The numbers, over the items at least two reviewers submitted:

- quality: Krippendorff's alpha with the interval metric, per queue and per
  reviewer pair, and the mean absolute difference between two reviewers' scores;
- category: Fleiss' kappa per queue (generalised to items with different
  numbers of reviewers), Krippendorff's alpha with the nominal metric, and
  Cohen's kappa per reviewer pair;
- stars: how often two reviewers of an item both starred it or both did not;
- preferences (pairwise queues): how often two reviewers gave the same verdict
  (the same winner, or both a tie, or both "both bad").

A value that cannot be computed (no overlap, no variation) is None with the
reason, never NaN.

Speed: a queue's rows are read once with values_list (a few queries, whatever
the size) and everything is computed with numpy over dense reviewers x items
arrays. Category alpha comes from the `krippendorff` package. Quality alpha is
computed here from its coincidence matrix, the same formula: the package
builds an items x values x values array, which at 20,000 items and 101
quality values is 1.6 GB and 13 s; the tests check the two agree.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import krippendorff
import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from batches.models import Request
from curation import judgments as judgments_module
from curation.models import (
    Annotation,
    CategoryChoices,
    Comparison,
    ItemReview,
    Judgment,
    JudgmentEdit,
    QueueItem,
    ReviewQueue,
    Star,
)

MISSING = -1
CATEGORIES: list[str] = list(CategoryChoices.values)
# Verdict codes in a pairwise queue: the same code is the same verdict.
TIE, BOTH_BAD, WINNER_A, WINNER_B = 0, 1, 2, 3
VERDICTS = {TIE: "tie", BOTH_BAD: "both bad", WINNER_A: "A wins", WINNER_B: "B wins"}
QUALITY_VALUES = 101  # 0-100

DEFAULT_QUALITY_GAP = 20
PAGE_SIZE = 50
OVERVIEW_LIMIT = 50

COEFFICIENT, RATE, POINTS = "coefficient", "rate", "points"


# --- Results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One agreement figure. `value` is None when it cannot be computed, and
    `reason` says why; `n` is what it rests on (items, or item pairs)."""

    value: float | None
    n: int = 0
    reason: str = ""
    kind: str = COEFFICIENT

    @property
    def display(self) -> str:
        if self.value is None:
            return "—"
        if self.kind == RATE:
            return f"{self.value:.0%}"
        if self.kind == POINTS:
            return f"{self.value:.1f}"
        return f"{self.value:.3f}"

    def as_dict(self) -> dict:
        return {
            "value": None if self.value is None else round(self.value, 4),
            "n": self.n,
            "reason": self.reason or None,
        }


def _metric(value: float | None, reason: str, n: int, kind: str = COEFFICIENT) -> Metric:
    if value is None or not np.isfinite(value):
        return Metric(None, n, reason or "not enough data", kind)
    return Metric(float(value), n, "", kind)


def _not_asked(what: str) -> Metric:
    return Metric(None, 0, f"this queue does not ask for {what}")


@dataclass
class PairAgreement:
    """Two reviewers, over the items both submitted."""

    first: str
    second: str
    shared: int
    quality_alpha: Metric
    quality_difference: Metric
    category_kappa: Metric
    stars: Metric
    preferences: Metric

    @property
    def metrics(self) -> list[Metric]:
        """In the pair table's column order."""
        return [
            self.quality_alpha,
            self.quality_difference,
            self.category_kappa,
            self.stars,
            self.preferences,
        ]


@dataclass
class QueueAgreement:
    queue: ReviewQueue
    overlap: int  # items at least two reviewers submitted
    reviewers: int  # reviewers who submitted any of them
    settled: int  # of those items, how many an adjudication settled
    quality_alpha: Metric
    quality_difference: Metric
    category_fleiss: Metric
    category_alpha: Metric
    stars: Metric
    preferences: Metric
    pairs: list[PairAgreement] = field(default_factory=list)

    @property
    def metrics(self) -> list[tuple[str, str, Metric]]:
        """(id, label, metric) for the queue page's cards."""
        return [
            ("quality-alpha", "Quality · Krippendorff's alpha (interval)", self.quality_alpha),
            ("quality-difference", "Quality · mean |difference| (points)", self.quality_difference),
            ("category-fleiss", "Category · Fleiss' kappa", self.category_fleiss),
            ("category-alpha", "Category · Krippendorff's alpha (nominal)", self.category_alpha),
            ("stars", "Stars · agreement rate", self.stars),
            ("preferences", "Preferences · agreement rate", self.preferences),
        ]


# --- The statistics (pure numpy) -------------------------------------------------


def alpha_from_coincidences(
    coincidences: np.ndarray, distances: np.ndarray
) -> tuple[float | None, str]:
    """Krippendorff's alpha from the coincidence matrix o (values x values) and
    the squared distances between values: 1 - D_o / D_e (Krippendorff 2011,
    "Computing Krippendorff's alpha-reliability")."""
    totals = coincidences.sum(axis=0)
    n = totals.sum()
    if n < 2:
        return None, "no item has two values to compare"
    expected = (np.outer(totals, totals) - np.diag(totals)) / (n - 1)
    disagreement_expected = float((expected * distances).sum())
    if disagreement_expected <= 0:
        return None, "every value given is the same: no variation to agree on"
    return 1 - float((coincidences * distances).sum()) / disagreement_expected, ""


def coincidences(values: np.ndarray, k: int) -> np.ndarray:
    """The coincidence matrix of a reviewers x items array of value indices
    (MISSING where a reviewer gave none): each item with m >= 2 values adds
    1 / (m - 1) for every ordered pair of its values."""
    present = values != MISSING
    m = present.sum(axis=0)
    weight = np.where(m >= 2, 1.0 / np.maximum(m - 1, 1), 0.0)
    o = np.zeros(k * k)
    for a in range(values.shape[0]):
        for b in range(a + 1, values.shape[0]):
            both = present[a] & present[b]
            if both.any():
                o += _pair_coincidences(values[a, both], values[b, both], k, weight[both])
    return o.reshape(k, k)


def _pair_coincidences(a: np.ndarray, b: np.ndarray, k: int, weights=None) -> np.ndarray:
    """Both orders of each pair of values (a[i], b[i]), flattened (k * k)."""
    return np.bincount(a * k + b, weights=weights, minlength=k * k) + np.bincount(
        b * k + a, weights=weights, minlength=k * k
    )


def interval_distances(k: int = QUALITY_VALUES) -> np.ndarray:
    scale = np.arange(k, dtype=float)
    return (scale[:, None] - scale[None, :]) ** 2


INTERVAL_DISTANCES = interval_distances()


def nominal_distances(k: int) -> np.ndarray:
    return 1.0 - np.eye(k)


def krippendorff_alpha(values: np.ndarray, *, level: str) -> tuple[float | None, str]:
    """Alpha of a reviewers x items array of values (NaN where missing):
    "interval" for whole numbers 0-100 (quality), "nominal" for category indices."""
    data = np.where(np.isnan(values), MISSING, values).astype(np.int64)
    if level == "interval":
        k, distances = QUALITY_VALUES, INTERVAL_DISTANCES
    else:
        k = int(data.max()) + 1 if (data != MISSING).any() else 1
        distances = nominal_distances(k)
    return alpha_from_coincidences(coincidences(data, k).reshape(k, k), distances)


def cohen_kappa(confusion: np.ndarray) -> tuple[float | None, str]:
    """Cohen's kappa from two reviewers' confusion matrix (first x second)."""
    n = confusion.sum()
    if n == 0:
        return None, "no item both reviewers categorised"
    observed = np.trace(confusion) / n
    expected = float((confusion.sum(axis=1) * confusion.sum(axis=0)).sum()) / (n * n)
    if expected >= 1 - 1e-12:
        return None, "both gave every item one and the same category: kappa is undefined"
    return (observed - expected) / (1 - expected), ""


def fleiss_kappa(counts: np.ndarray) -> tuple[float | None, str]:
    """Fleiss' kappa from an items x categories array of how many reviewers
    chose each category. Items may have different numbers of reviewers (each
    item's agreement is over its own pairs, as in Fleiss 1971 when they are
    equal); items with fewer than two are left out."""
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) == 0:
        return None, "no item has two categories to compare"
    per_item = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    observed = per_item.mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares * shares).sum())
    if expected >= 1 - 1e-12:
        return None, "every item got one and the same category: kappa is undefined"
    return (observed - expected) / (1 - expected), ""


def nominal_alpha(counts: np.ndarray) -> tuple[float | None, str]:
    """Krippendorff's alpha, nominal metric, from an items x categories array of
    how many reviewers chose each category, by the `krippendorff` package (its
    items x categories x categories arrays stay small with three categories)."""
    if not (counts.sum(axis=1) >= 2).any():
        return None, "no item has two categories to compare"
    with np.errstate(invalid="ignore", divide="ignore"):
        value = krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    if not np.isfinite(value):
        return None, "every item got one and the same category: alpha is undefined"
    return float(value), ""


# --- Reading a queue's overlap ---------------------------------------------------


@dataclass
class _Overlap:
    """A queue's items that at least two reviewers submitted, as dense
    reviewers x items arrays (MISSING where a reviewer said nothing)."""

    queue: ReviewQueue
    reviewer_ids: np.ndarray  # (R,)
    item_ids: np.ndarray  # (N,), in position order
    positions: np.ndarray
    request_ids: np.ndarray
    done: np.ndarray  # (R, N) bool
    quality: np.ndarray  # (R, N) 0-100
    category: np.ndarray  # (R, N) index in CATEGORIES
    starred: np.ndarray  # (R, N) 1, 0, MISSING where not submitted
    verdict: np.ndarray  # (R, N) TIE, BOTH_BAD, WINNER_A, WINNER_B
    settled: np.ndarray  # (N,) bool

    @property
    def asks(self) -> set[str]:
        return set(self.queue.fields)

    @property
    def pairwise(self) -> bool:
        return self.queue.kind == ReviewQueue.Kind.PAIRWISE


def _submissions_sql() -> str:
    """One row per submission (a done ItemReview) on an item two or more
    reviewers submitted: item, reviewer, position, result, the reviewer's own
    quality and category (-1: none), whether they starred the result, and
    whether an adjudication settled it.

    Raw SQL because it is the page's whole cost: one pass over the queue's
    reviews with one index probe each into judgments (request, reviewer, role),
    stars (request, user) and adjudications, all integers so numpy takes the
    rows as they come. The ORM's form needs a correlated subquery per column
    and measured twice as slow at 50,000 submissions (bench/agreement.py)."""
    categories = " ".join(f"WHEN %s THEN {i}" for i in range(len(CATEGORIES)))
    return f"""
        SELECT r.item_id, r.reviewer_id, i.position, i.request_id,
               COALESCE(j.quality, -1),
               CASE j.category {categories} ELSE -1 END,
               CASE WHEN EXISTS (
                   SELECT 1 FROM {Star._meta.db_table} s
                   WHERE s.request_id = i.request_id AND s.user_id = r.reviewer_id
               ) THEN 1 ELSE 0 END,
               CASE WHEN EXISTS (
                   SELECT 1 FROM {Judgment._meta.db_table} a
                   WHERE a.request_id = i.request_id AND a.role = %s
               ) THEN 1 ELSE 0 END
        FROM {ItemReview._meta.db_table} r
        JOIN {QueueItem._meta.db_table} i ON i.id = r.item_id
        LEFT JOIN {Judgment._meta.db_table} j
            ON j.request_id = i.request_id AND j.reviewer_id = r.reviewer_id AND j.role = %s
        WHERE r.queue_id = %s AND r.state = %s AND i.done_count >= 2
    """


def _overlap(queue: ReviewQueue) -> _Overlap:
    with connection.cursor() as cursor:
        cursor.execute(
            _submissions_sql(),
            [
                *CATEGORIES,
                Judgment.Role.ADJUDICATION,
                Judgment.Role.REVIEW,
                queue.pk,
                ItemReview.State.DONE,
            ],
        )
        rows = cursor.fetchall()
    columns = np.array(rows, dtype=np.int64).reshape(-1, 8)
    item_column, reviewer_column = columns[:, 0], columns[:, 1]
    items, first, inverse = np.unique(item_column, return_index=True, return_inverse=True)
    # Items in position order (the order the queue serves them).
    by_position = np.argsort(columns[first, 2], kind="stable")
    rank = np.empty(len(items), dtype=np.int64)
    rank[by_position] = np.arange(len(items))
    col = rank[inverse]
    reviewers = np.unique(reviewer_column)
    row = np.searchsorted(reviewers, reviewer_column)
    shape = (len(reviewers), len(items))

    def cells(values: np.ndarray | int, empty: int = MISSING) -> np.ndarray:
        grid = np.full(shape, empty, dtype=np.int64)
        grid[row, col] = values
        return grid

    done = cells(1, 0).astype(bool)
    asks = set(queue.fields)
    pairwise = queue.kind == ReviewQueue.Kind.PAIRWISE
    quality = cells(columns[:, 4])
    category = cells(columns[:, 5])
    starred = cells(columns[:, 6])
    settled = np.zeros(len(items), dtype=bool)
    settled[rank[inverse]] = columns[:, 7] == 1
    # Only what the queue asks for is the queue's work.
    if pairwise or ReviewQueue.Field.QUALITY not in asks:
        quality[:] = MISSING
    if pairwise or ReviewQueue.Field.CATEGORY not in asks:
        category[:] = MISSING
    if ReviewQueue.Field.STAR not in asks:
        starred[:] = MISSING
    # done_count only prefilters: keep the items two reviewers really submitted.
    keep = done.sum(axis=0) >= 2
    used = done[:, keep].any(axis=1)
    overlap = _Overlap(
        queue=queue,
        reviewer_ids=reviewers[used],
        item_ids=items[by_position][keep],
        positions=columns[first, 2][by_position][keep],
        request_ids=columns[first, 3][by_position][keep],
        done=done[used][:, keep],
        quality=quality[used][:, keep],
        category=category[used][:, keep],
        starred=starred[used][:, keep],
        verdict=np.full((int(used.sum()), int(keep.sum())), MISSING, dtype=np.int64),
        settled=settled[keep],
    )
    if pairwise and len(overlap.item_ids):
        _read_verdicts(overlap)
    return overlap


def _read_verdicts(overlap: _Overlap) -> None:
    """Each reviewer's verdict on each pairwise item's two responses."""
    sides = dict(
        QueueItem.objects.filter(
            queue=overlap.queue, done_count__gte=2, other__isnull=False
        ).values_list("request_id", "other_id")
    )
    by_key = {Comparison.key([a, b]): a for a, b in sides.items() if b is not None}
    column = {int(request): i for i, request in enumerate(overlap.request_ids)}
    row = {int(reviewer): i for i, reviewer in enumerate(overlap.reviewer_ids)}
    comparisons = Comparison.objects.filter(user_id__in=list(row))
    for key, user_id, outcome, winner_id in comparisons.values_list(
        "candidates_key", "user_id", "outcome", "winner_id"
    ):
        request_id = by_key.get(key)
        if request_id not in column or not overlap.done[row[user_id], column[request_id]]:
            continue
        if outcome == Comparison.Outcome.TIE:
            code = TIE
        elif outcome == Comparison.Outcome.BOTH_BAD:
            code = BOTH_BAD
        else:
            code = WINNER_A if winner_id == request_id else WINNER_B
        overlap.verdict[row[user_id], column[request_id]] = code


# --- Agreement -------------------------------------------------------------------


def _usernames(ids) -> dict[int, str]:
    return dict(
        get_user_model().objects.filter(pk__in=[int(i) for i in ids]).values_list("pk", "username")
    )


def queue_agreement(*, queue: ReviewQueue) -> QueueAgreement:
    """Agreement in `queue`, overall and per reviewer pair."""
    data = _overlap(queue)
    names = _usernames(data.reviewer_ids)
    asks = data.asks
    results_queue = not data.pairwise
    q, c, s, v = data.quality, data.category, data.starred, data.verdict
    k = len(CATEGORIES)
    m_quality = (q != MISSING).sum(axis=0)
    quality_weight = np.where(m_quality >= 2, 1.0 / np.maximum(m_quality - 1, 1), 0.0)
    m_category = (c != MISSING).sum(axis=0)
    quality_o = np.zeros(QUALITY_VALUES * QUALITY_VALUES)
    totals: dict[str, float] = defaultdict(float)  # pooled over every (pair, item)
    pairs = []
    r = len(data.reviewer_ids)
    for a in range(r):
        for b in range(a + 1, r):
            shared = data.done[a] & data.done[b]
            count = int(shared.sum())
            if not count:
                continue
            pair: dict[str, Metric] = {}
            both = shared & (q[a] != MISSING) & (q[b] != MISSING)
            qa, qb = q[a, both], q[b, both]
            quality_o += _pair_coincidences(qa, qb, QUALITY_VALUES, quality_weight[both])
            pair_o = _pair_coincidences(qa, qb, QUALITY_VALUES)
            value, reason = alpha_from_coincidences(
                pair_o.reshape(QUALITY_VALUES, QUALITY_VALUES), INTERVAL_DISTANCES
            )
            pair["quality_alpha"] = _metric(value, reason, len(qa))
            difference = float(np.abs(qa - qb).sum())
            totals["difference"] += difference
            totals["scored"] += len(qa)
            pair["quality_difference"] = _metric(
                difference / len(qa) if len(qa) else None,
                "no item both scored",
                len(qa),
                POINTS,
            )
            both = shared & (c[a] != MISSING) & (c[b] != MISSING)
            ca, cb = c[a, both], c[b, both]
            confusion = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k)
            value, reason = cohen_kappa(confusion)
            pair["category_kappa"] = _metric(value, reason, len(ca))
            same, compared = _rate(s[a, shared], s[b, shared])
            totals["stars_same"] += same
            totals["stars"] += compared
            pair["stars"] = _metric(
                same / compared if compared else None, "no item both submitted", compared, RATE
            )
            same, compared = _rate(v[a, shared], v[b, shared])
            totals["verdicts_same"] += same
            totals["verdicts"] += compared
            pair["preferences"] = _metric(
                same / compared if compared else None,
                "no item both gave a verdict on",
                compared,
                RATE,
            )
            if ReviewQueue.Field.QUALITY not in asks or not results_queue:
                pair["quality_alpha"] = pair["quality_difference"] = _not_asked("quality")
            if ReviewQueue.Field.CATEGORY not in asks or not results_queue:
                pair["category_kappa"] = _not_asked("categories")
            if ReviewQueue.Field.STAR not in asks:
                pair["stars"] = _not_asked("stars")
            if results_queue:
                pair["preferences"] = _not_asked("preferences")
            first, second = (
                names.get(int(data.reviewer_ids[a]), "?"),
                names.get(int(data.reviewer_ids[b]), "?"),
            )
            pairs.append(PairAgreement(first=first, second=second, shared=count, **pair))

    overlap = len(data.item_ids)
    none_reason = "no item has two reviewers yet" if not overlap else ""
    if ReviewQueue.Field.QUALITY in asks and results_queue:
        value, reason = alpha_from_coincidences(
            quality_o.reshape(QUALITY_VALUES, QUALITY_VALUES), INTERVAL_DISTANCES
        )
        quality_alpha = _metric(value, none_reason or reason, int((m_quality >= 2).sum()))
        scored = int(totals["scored"])
        quality_difference = _metric(
            totals["difference"] / scored if scored else None,
            none_reason or "no item two reviewers both scored",
            scored,
            POINTS,
        )
    else:
        quality_alpha = quality_difference = _not_asked("quality")
    if ReviewQueue.Field.CATEGORY in asks and results_queue:
        counts = np.zeros((overlap, k), dtype=np.int64)
        rows_, cols_ = np.nonzero(c != MISSING)
        np.add.at(counts, (cols_, c[rows_, cols_]), 1)
        value, reason = fleiss_kappa(counts)
        categorised = int((m_category >= 2).sum())
        category_fleiss = _metric(value, none_reason or reason, categorised)
        value, reason = nominal_alpha(counts)
        category_alpha = _metric(value, none_reason or reason, categorised)
    else:
        category_fleiss = category_alpha = _not_asked("categories")
    if ReviewQueue.Field.STAR in asks:
        compared = int(totals["stars"])
        stars = _metric(
            totals["stars_same"] / compared if compared else None,
            none_reason or "no item two reviewers both submitted",
            compared,
            RATE,
        )
    else:
        stars = _not_asked("stars")
    if data.pairwise:
        compared = int(totals["verdicts"])
        preferences = _metric(
            totals["verdicts_same"] / compared if compared else None,
            none_reason or "no item two reviewers both gave a verdict on",
            compared,
            RATE,
        )
    else:
        preferences = _not_asked("preferences")
    pairs.sort(key=lambda p: (-p.shared, p.first, p.second))
    return QueueAgreement(
        queue=queue,
        overlap=overlap,
        reviewers=len(data.reviewer_ids),
        settled=int(data.settled.sum()),
        quality_alpha=quality_alpha,
        quality_difference=quality_difference,
        category_fleiss=category_fleiss,
        category_alpha=category_alpha,
        stars=stars,
        preferences=preferences,
        pairs=pairs,
    )


def _rate(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(same, compared) over the positions where both have a value."""
    both = (a != MISSING) & (b != MISSING)
    return int((a[both] == b[both]).sum()), int(both.sum())


def queues_with_overlap(*, limit: int = OVERVIEW_LIMIT) -> QuerySet[ReviewQueue]:
    """Queues holding an item that two reviewers submitted, newest first."""
    overlapping = QueueItem.objects.filter(queue=OuterRef("pk"), done_count__gte=2)
    return ReviewQueue.objects.filter(Exists(overlapping)).order_by("-pk")[:limit]


def agreement_overview(*, limit: int = OVERVIEW_LIMIT) -> list[QueueAgreement]:
    return [queue_agreement(queue=queue) for queue in queues_with_overlap(limit=limit)]


# --- Disagreements ---------------------------------------------------------------


@dataclass
class Opinion:
    """What one reviewer said about an item."""

    reviewer: str
    quality: int | None = None
    category: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    starred: bool | None = None
    verdict: str = ""

    @property
    def category_label(self) -> str:
        return CategoryChoices(self.category).label if self.category else ""


@dataclass
class Disagreement:
    item: QueueItem
    reasons: list[str]
    opinions: list[Opinion]
    annotation: Annotation | None
    settled_by: str | None
    settled_at: datetime | None

    @property
    def result(self) -> Request:
        return self.item.request


@dataclass
class DisagreementPage:
    queue: ReviewQueue
    rows: list[Disagreement]
    total: int  # disagreements shown with these settings, all pages
    settled: int  # disagreements already settled (hidden unless include_settled)
    quality_gap: int
    include_settled: bool
    after: int | None
    next_after: int | None  # the cursor of the next page, if there is one


def disagreements(
    *,
    queue: ReviewQueue,
    quality_gap: int = DEFAULT_QUALITY_GAP,
    include_settled: bool = False,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> DisagreementPage:
    """The items of `queue` its reviewers disagree on, in queue order: scores
    `quality_gap` or more apart, different categories, a star from some but not
    all, or different verdicts. Settled items are left out unless asked for.
    Keyset paging on the item's position (`after`)."""
    limit = max(1, min(limit, 100))
    data = _overlap(queue)
    reasons = _disagreement_reasons(data, quality_gap)
    flagged = np.zeros(len(data.item_ids), dtype=bool)
    for mask, _ in reasons:
        flagged |= mask
    settled = int((flagged & data.settled).sum())
    if not include_settled:
        flagged &= ~data.settled
    total = int(flagged.sum())
    if after is not None:
        flagged &= data.positions > after
    chosen = np.flatnonzero(flagged)[: limit + 1]
    more = len(chosen) > limit
    chosen = chosen[:limit]
    rows = _disagreement_rows(data, chosen, reasons)
    return DisagreementPage(
        queue=queue,
        rows=rows,
        total=total,
        settled=settled,
        quality_gap=quality_gap,
        include_settled=include_settled,
        after=after,
        next_after=int(data.positions[chosen[-1]]) if more else None,
    )


def _spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: how many values, the lowest and the highest."""
    present = values != MISSING
    count = present.sum(axis=0)
    big = np.iinfo(np.int64).max
    low = np.where(present, values, big).min(axis=0, initial=big)
    high = np.where(present, values, -1).max(axis=0, initial=-1)
    return count, low, high


def _disagreement_reasons(data: _Overlap, quality_gap: int) -> list[tuple[np.ndarray, str]]:
    """(items mask, what differs) for each kind of disagreement."""
    found = []
    count, low, high = _spread(data.quality)
    found.append(((count >= 2) & (high - low >= quality_gap), "quality"))
    for values, what in (
        (data.category, "category"),
        (data.starred, "star"),
        (data.verdict, "verdict"),
    ):
        count, low, high = _spread(values)
        found.append(((count >= 2) & (high != low), what))
    return found


def _disagreement_rows(
    data: _Overlap, chosen: np.ndarray, reasons: list[tuple[np.ndarray, str]]
) -> list[Disagreement]:
    if not len(chosen):
        return []
    item_ids = [int(i) for i in data.item_ids[chosen]]
    items = {
        item.pk: item
        for item in QueueItem.objects.filter(pk__in=item_ids).select_related(
            "request__batch", "other__batch"
        )
    }
    request_ids = [items[i].request_id for i in item_ids]
    names = _usernames(data.reviewer_ids)
    judged: dict[tuple[int, int], Judgment] = {}
    adjudications: dict[int, Judgment] = {}
    for judgment in (
        Judgment.objects.filter(request_id__in=request_ids)
        .select_related("reviewer")
        .prefetch_related("tags")
        .order_by("updated_at", "pk")
    ):
        if judgment.role == Judgment.Role.ADJUDICATION:
            adjudications[judgment.request_id] = judgment  # the latest settles it
        else:
            judged[(judgment.request_id, judgment.reviewer_id)] = judgment
    annotations = {
        a.pk: a for a in Annotation.objects.filter(pk__in=request_ids).prefetch_related("tags")
    }
    rows = []
    for column, item_id in zip(chosen, item_ids, strict=True):
        item = items[item_id]
        opinions = []
        for row in np.flatnonzero(data.done[:, column]):
            reviewer_id = int(data.reviewer_ids[row])
            own = judged.get((item.request_id, reviewer_id))
            quality = int(data.quality[row, column])
            category = int(data.category[row, column])
            starred = int(data.starred[row, column])
            verdict = int(data.verdict[row, column])
            opinions.append(
                Opinion(
                    reviewer=names.get(reviewer_id, "?"),
                    quality=None if quality == MISSING else quality,
                    category="" if category == MISSING else CATEGORIES[category],
                    tags=[t.name for t in own.tags.all()] if own else [],
                    notes=own.notes if own else "",
                    starred=None if starred == MISSING else bool(starred),
                    verdict=VERDICTS.get(verdict, ""),
                )
            )
        opinions.sort(key=lambda o: o.reviewer)
        _, low, high = _spread(data.quality[:, column : column + 1])
        differs = []
        for mask, what in reasons:
            if mask[column]:
                differs.append(
                    f"quality {int(low[0])} to {int(high[0])}" if what == "quality" else what
                )
        decision = adjudications.get(item.request_id)
        rows.append(
            Disagreement(
                item=item,
                reasons=differs,
                opinions=opinions,
                annotation=annotations.get(item.request_id),
                settled_by=decision.reviewer.get_username() if decision else None,
                settled_at=decision.updated_at if decision else None,
            )
        )
    return rows


# --- A result's judgments (the review page) --------------------------------------

HISTORY_SHOWN = 100


@dataclass
class ResultJudgments:
    judgments: list[Judgment]  # reviews first, then adjudications; each oldest first
    history: list[tuple[JudgmentEdit, list[tuple[str, str]]]]  # latest first, with lines
    history_total: int


def result_judgments(*, result: Request) -> ResultJudgments:
    """Every reviewer's judgment of `result` and their edit history, for the review page."""
    rows = list(
        Judgment.objects.filter(request=result)
        .select_related("reviewer")
        .prefetch_related("tags")
        .order_by("created_at", "pk")
    )
    # Reviews first, then the adjudications that settle them.
    rows.sort(key=lambda j: j.role == Judgment.Role.ADJUDICATION)
    history = judgments_module.judgment_history(request=result)
    return ResultJudgments(
        judgments=rows,
        history=[(edit, _change_lines(edit.changes)) for edit in history[:HISTORY_SHOWN]],
        history_total=len(history),
    )


def _change_lines(changes) -> list[tuple[str, str]]:
    """An edit's changes as (field, "before → after") lines, whatever the JSON holds."""
    if not isinstance(changes, dict):
        return [("change", str(changes)[:200])]
    lines = []
    for name, change in changes.items():
        if isinstance(change, list) and len(change) == 2:
            before, after = (_shown(v) for v in change)
            lines.append((str(name), f"{before} → {after}"))
        elif isinstance(change, dict) and "added" in change:
            lines.append((str(name), f"+ {_shown(change['added'])}"))
        else:
            lines.append((str(name), _shown(change)))
    return lines


def _shown(value, limit: int = 200) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value) or "(none)"
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
