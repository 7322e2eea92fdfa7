"""Agreement metrics (published examples, the krippendorff package as the oracle),
agreement in queues worked through the queue services, disagreements, settling."""

import krippendorff
import numpy as np
import pytest

from batches.models import Request
from core.exceptions import ApplicationError
from curation import adjudication, agreement, judgments, queues
from curation.models import Annotation, Judgment, JudgmentEdit, QueueItem
from tests.factories import make_batch

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the example
# with three coders and missing values (also the krippendorff package's example).
KRIPPENDORFF_EXAMPLE = [
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


# --- The statistics ---------------------------------------------------------------


def test_alpha_matches_the_published_example():
    data = np.array(KRIPPENDORFF_EXAMPLE)
    interval, _ = agreement.krippendorff_alpha(data, level="interval")
    nominal, _ = agreement.krippendorff_alpha(data, level="nominal")
    assert interval == pytest.approx(0.811, abs=5e-4)
    assert nominal == pytest.approx(0.691, abs=5e-4)


@pytest.mark.parametrize("seed", range(6))
def test_interval_alpha_agrees_with_the_krippendorff_package(seed):
    rng = np.random.default_rng(seed)
    reviewers, items = rng.integers(2, 6), rng.integers(5, 200)
    truth = rng.integers(0, 101, size=items)
    data = np.clip(truth + rng.integers(-25, 26, size=(reviewers, items)), 0, 100).astype(float)
    data[rng.random(data.shape) < 0.4] = nan  # missing values
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert agreement.krippendorff_alpha(data, level="interval")[0] == pytest.approx(expected)


def test_nominal_alpha_from_counts_agrees_with_reliability_data():
    data = np.array(KRIPPENDORFF_EXAMPLE)
    values = np.unique(data[~np.isnan(data)])
    counts = np.stack([(data == v).sum(axis=0) for v in values], axis=1)
    assert agreement.nominal_alpha(counts)[0] == pytest.approx(0.691, abs=5e-4)


def test_cohen_kappa_matches_the_textbook_example():
    # Wikipedia, "Cohen's kappa": 50 proposals, two readers; yes/yes 20, yes/no 5,
    # no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    kappa, reason = agreement.cohen_kappa(np.array([[20, 5], [10, 15]]))
    assert kappa == pytest.approx(0.4)
    assert reason == ""


def test_fleiss_kappa_matches_the_worked_example():
    kappa, _ = agreement.fleiss_kappa(np.array(FLEISS_EXAMPLE))
    assert kappa == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_takes_items_with_different_numbers_of_reviewers():
    # Two items both reviewers agree on, one three reviewers split 2:1.
    counts = np.array([[2, 0], [0, 2], [2, 1]])
    kappa, _ = agreement.fleiss_kappa(counts)
    per_item = np.array([1, 1, (4 + 1 - 3) / 6]).mean()
    shares = np.array([4, 3]) / 7
    expected = (per_item - (shares**2).sum()) / (1 - (shares**2).sum())
    assert kappa == pytest.approx(expected)
    # An item one reviewer categorised takes no part.
    assert agreement.fleiss_kappa(np.vstack([counts, [[0, 1]]]))[0] == pytest.approx(expected)


def test_undefined_values_say_why_and_are_never_nan():
    same = np.array([[70.0, 70, 70], [70, 70, 70]])
    assert agreement.krippendorff_alpha(same, level="interval") == (
        None,
        "every value given is the same: no variation to agree on",
    )
    one_reviewer = np.array([[10.0, 90, nan], [nan, nan, 50]])
    assert agreement.krippendorff_alpha(one_reviewer, level="interval")[0] is None
    assert agreement.cohen_kappa(np.zeros((3, 3)))[0] is None
    all_good = np.array([[5, 0, 0], [0, 0, 0], [0, 0, 0]])
    value, reason = agreement.cohen_kappa(all_good)
    assert value is None and "undefined" in reason
    assert agreement.fleiss_kappa(np.array([[3, 0, 0], [2, 0, 0]]))[0] is None
    assert agreement.fleiss_kappa(np.zeros((0, 3)))[0] is None
    assert agreement.nominal_alpha(np.array([[2, 0, 0], [3, 0, 0]]))[0] is None
    metric = agreement._metric(float("nan"), "why", 3)
    assert (metric.value, metric.display, metric.as_dict()) == (
        None,
        "—",
        {"value": None, "n": 3, "reason": "why"},
    )


# --- Queues -----------------------------------------------------------------------


@pytest.fixture
def erin(django_user_model):
    return django_user_model.objects.create_user("erin", password="erin-pw", is_staff=True)


def _queue(created_by, batch, **spec):
    spec = {
        "name": "overlap",
        "filter_query": f"batch={batch.public_id}",
        "fields": ("star", "quality", "category", "tags", "notes"),
        "reviewers_per_item": 2,
        **spec,
    }
    return queues.queue_create(spec=queues.QueueSpec(**spec), created_by=created_by)


def _work(queue, reviewer, submissions):
    """`reviewer` claims and submits the next items, one per submission (None: skip)."""
    for submission in submissions:
        claimed = queues.claim_next(queue=queue, reviewer=reviewer)
        assert claimed is not None
        if submission is None:
            queues.item_skip(queue=queue, item_id=claimed.item_id, reviewer=reviewer)
        else:
            queues.item_submit(
                queue=queue, item_id=claimed.item_id, reviewer=reviewer, submission=submission
            )


def S(quality=None, category=None, star=None, **more):  # a submission, short: tables of them
    changes = {k: v for k, v in {"quality": quality, "category": category}.items() if v}
    return queues.Submission(star=star, changes=changes | more or None)


@pytest.mark.django_db
def test_a_two_reviewer_queue_reports_alpha_kappa_and_rates(owner, carol, dave):
    batch = make_batch(owner, count=5)
    queue = _queue(carol, batch)
    carol_says = [
        (90, "excellent", True),
        (70, "good", False),
        (40, "good", False),
        (20, "needs_improvement", False),
        (85, "excellent", True),
    ]
    dave_says = [
        (80, "excellent", True),
        (75, "good", True),
        (60, "needs_improvement", False),
        (25, "needs_improvement", False),
        (85, "good", True),
    ]
    _work(queue, carol, [S(q, c, s) for q, c, s in carol_says])
    _work(queue, dave, [S(q, c, s) for q, c, s in dave_says])

    result = agreement.queue_agreement(queue=queue)

    assert (result.overlap, result.reviewers, result.settled) == (5, 2, 0)
    scores = np.array([[q for q, _, _ in carol_says], [q for q, _, _ in dave_says]], dtype=float)
    expected_alpha = krippendorff.alpha(reliability_data=scores, level_of_measurement="interval")
    assert result.quality_alpha.value == pytest.approx(expected_alpha)
    assert result.quality_alpha.n == 5
    assert result.quality_difference.value == pytest.approx((10 + 5 + 20 + 5 + 0) / 5)
    # Categories: agree on items 1, 2 and 4 of 5; Cohen's kappa by hand.
    p_o = 3 / 5
    carol_share = np.array([2, 2, 1]) / 5  # excellent, good, needs_improvement
    dave_share = np.array([1, 2, 2]) / 5
    p_e = (carol_share * dave_share).sum()
    (pair,) = result.pairs
    assert (pair.first, pair.second, pair.shared) == ("carol", "dave", 5)
    assert pair.category_kappa.value == pytest.approx((p_o - p_e) / (1 - p_e))
    assert pair.quality_alpha.value == pytest.approx(expected_alpha)
    assert result.stars.value == pytest.approx(4 / 5)  # item 2: carol no, dave yes
    assert result.stars.display == "80%"
    assert result.preferences.value is None
    assert result.preferences.reason == "this queue does not ask for preferences"
    labels = np.array([[c for _, c, _ in carol_says], [c for _, c, _ in dave_says]])
    assert result.category_alpha.value == pytest.approx(
        krippendorff.alpha(
            reliability_data=labels,
            level_of_measurement="nominal",
            value_domain=["excellent", "good", "needs_improvement"],
        )
    )


@pytest.mark.django_db
def test_three_reviewers_with_uneven_overlap_and_missing_values(owner, carol, dave, erin):
    batch = make_batch(owner, count=4)
    queue = _queue(carol, batch, reviewers_per_item=3)
    _work(queue, carol, [S(90, "good"), S(50, "good"), S(10), S(None, "good")])
    _work(queue, dave, [S(80, "good"), S(60, "excellent"), None, S(None, "good")])
    _work(queue, erin, [S(85, "good"), S(40)])

    result = agreement.queue_agreement(queue=queue)

    # Item 3: only carol submitted (dave skipped, erin never got there).
    assert result.overlap == 3
    items = list(QueueItem.objects.filter(queue=queue).order_by("position"))
    scores = np.array([[90, 50, 10, nan], [80, 60, nan, nan], [85, 40, nan, nan]], dtype=float)
    expected = krippendorff.alpha(reliability_data=scores, level_of_measurement="interval")
    assert result.quality_alpha.value == pytest.approx(expected)
    assert result.quality_alpha.n == 2
    assert {(p.first, p.second): p.shared for p in result.pairs} == {
        ("carol", "dave"): 3,
        ("carol", "erin"): 2,
        ("dave", "erin"): 2,
    }
    # Fleiss over items 1, 2 and 4: good x3, good/excellent, good x2.
    counts = np.array([[0, 3, 0], [1, 1, 0], [0, 2, 0]])
    assert result.category_fleiss.value == pytest.approx(agreement.fleiss_kappa(counts)[0])
    assert result.category_fleiss.n == 3
    # Stars were asked but nobody starred: everyone agrees.
    assert result.stars.value == 1.0
    assert len(items) == 4


@pytest.mark.django_db
def test_work_outside_the_queue_and_adjudications_do_not_count(owner, carol, dave, erin):
    batch = make_batch(owner, count=2)
    queue = _queue(carol, batch, fields=("quality",))
    _work(queue, carol, [S(90), S(30)])
    _work(queue, dave, [S(90), S(30)])
    first = QueueItem.objects.get(queue=queue, position=1).request
    # Erin scores outside the queue; an adjudicator settles the first item.
    judgments.judgment_update(request=first, reviewer=erin, changes={"quality": 0})
    adjudication.result_settle(
        request=first, adjudicator=erin, quality=10, category="", tags=[], notes=""
    )

    result = agreement.queue_agreement(queue=queue)

    assert result.reviewers == 2
    assert result.quality_alpha.value == pytest.approx(1.0)
    assert result.quality_difference.value == 0
    assert result.settled == 1
    assert result.category_fleiss.reason == "this queue does not ask for categories"
    assert result.stars.reason == "this queue does not ask for stars"


@pytest.mark.django_db
def test_identical_scores_leave_alpha_undefined_with_the_reason(owner, carol, dave):
    batch = make_batch(owner, count=3)
    queue = _queue(carol, batch, fields=("quality", "category"))
    _work(queue, carol, [S(70, "good")] * 3)
    _work(queue, dave, [S(70, "good")] * 3)

    result = agreement.queue_agreement(queue=queue)

    assert result.quality_alpha.value is None
    assert result.quality_alpha.display == "—"
    assert "same" in result.quality_alpha.reason
    assert result.quality_difference.value == 0
    assert result.category_fleiss.value is None
    assert result.category_alpha.value is None
    assert "same category" in result.category_alpha.reason
    assert result.pairs[0].category_kappa.value is None


@pytest.mark.django_db
def test_a_queue_without_overlap_reports_nothing_computable(owner, carol, dave):
    batch = make_batch(owner, count=3)
    queue = _queue(carol, batch, reviewers_per_item=1)
    _work(queue, carol, [S(70, "good")])
    _work(queue, dave, [S(20, "good")])

    result = agreement.queue_agreement(queue=queue)

    assert (result.overlap, result.pairs) == (0, [])
    for metric in (result.quality_alpha, result.category_fleiss, result.stars):
        assert metric.value is None
        assert metric.reason == "no item has two reviewers yet"
    assert list(agreement.queues_with_overlap()) == []


@pytest.mark.django_db
def test_pairwise_queues_report_how_often_verdicts_agree(owner, carol, dave):
    first = make_batch(owner, model="tiny-chat", count=4, prefix="p")
    second = make_batch(owner, model="other-model", count=4, prefix="p")
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="pairs",
            kind="pairwise",
            compare_batches=(first.public_id, second.public_id),
            reviewers_per_item=2,
        ),
        created_by=carol,
    )
    verdicts = {
        "carol": [("winner", "a"), ("tie", None), ("both_bad", None), ("winner", "b")],
        "dave": [("winner", "a"), ("tie", None), ("winner", "a"), ("winner", "a")],
    }
    for reviewer in (carol, dave):
        _work(
            queue,
            reviewer,
            [queues.Submission(outcome=o, winner=w) for o, w in verdicts[reviewer.get_username()]],
        )

    result = agreement.queue_agreement(queue=queue)

    assert result.overlap == 4
    assert result.preferences.value == pytest.approx(2 / 4)
    assert result.pairs[0].preferences.value == pytest.approx(2 / 4)
    assert result.quality_alpha.reason == "this queue does not ask for quality"
    page = agreement.disagreements(queue=queue)
    assert [row.item.position for row in page.rows] == [3, 4]
    assert page.rows[0].reasons == ["verdict"]
    assert {o.reviewer: o.verdict for o in page.rows[1].opinions} == {
        "carol": "B wins",
        "dave": "A wins",
    }


# --- Disagreements and settling ---------------------------------------------------


@pytest.fixture
def disputed(owner, carol, dave):
    """Six items, two reviewers each: quality gaps 5, 25, 50; a category split;
    a star split; one full agreement."""
    batch = make_batch(owner, count=6)
    queue = _queue(carol, batch)
    _work(
        queue,
        carol,
        [S(80, "good"), S(80, "good"), S(90, "good"), S(60, "good"), S(60, "good", True), S(50)],
    )
    _work(
        queue,
        dave,
        [
            S(75, "good"),
            S(55, "good"),
            S(40, "good"),
            S(60, "excellent"),
            S(60, "good", False),
            S(50),
        ],
    )
    return queue


@pytest.mark.django_db
def test_disagreements_list_what_differs_beyond_the_gap(disputed):
    page = agreement.disagreements(queue=disputed, quality_gap=20)
    assert [(row.item.position, row.reasons) for row in page.rows] == [
        (2, ["quality 55 to 80"]),
        (3, ["quality 40 to 90"]),
        (4, ["category"]),
        (5, ["star"]),
    ]
    assert page.total == 4
    row = page.rows[1]
    assert [(o.reviewer, o.quality, o.category) for o in row.opinions] == [
        ("carol", 90, "good"),
        ("dave", 40, "good"),
    ]
    assert row.annotation.quality == 65  # the derived mean
    assert row.settled_by is None
    wider = agreement.disagreements(queue=disputed, quality_gap=30)
    assert [r.item.position for r in wider.rows] == [3, 4, 5]
    assert len(agreement.disagreements(queue=disputed, quality_gap=5).rows) == 5


@pytest.mark.django_db
def test_disagreement_pages_are_keyset_paged(disputed):
    first = agreement.disagreements(queue=disputed, limit=3)
    assert [r.item.position for r in first.rows] == [2, 3, 4]
    assert first.next_after == 4
    second = agreement.disagreements(queue=disputed, limit=3, after=first.next_after)
    assert [r.item.position for r in second.rows] == [5]
    assert second.next_after is None
    assert second.total == 4


@pytest.mark.django_db
def test_settling_records_the_adjudication_and_drops_the_item(disputed, carol, dave):
    item = QueueItem.objects.get(queue=disputed, position=3)
    judgment = adjudication.result_settle(
        request=item.request,
        adjudicator=carol,
        quality=70,
        category="excellent",
        tags=["senior", " senior ", "rust"],
        notes="Carol decides.",
    )

    assert (judgment.role, judgment.reviewer) == (Judgment.Role.ADJUDICATION, carol)
    annotation = Annotation.objects.get(pk=item.request_id)
    assert (annotation.quality, annotation.category, annotation.notes) == (
        70,
        "excellent",
        "Carol decides.",
    )
    assert sorted(annotation.tags.values_list("name", flat=True)) == ["rust", "senior"]
    assert annotation.edited_by == carol
    # The reviewers' own judgments stay as they were.
    assert set(
        Judgment.objects.filter(request=item.request, role="review").values_list(
            "reviewer__username", "quality"
        )
    ) == {("carol", 90), ("dave", 40)}
    edit = JudgmentEdit.objects.get(judgment=judgment)
    assert edit.editor == carol
    page = agreement.disagreements(queue=disputed)
    assert 3 not in [r.item.position for r in page.rows]
    assert (page.total, page.settled) == (3, 1)
    shown = agreement.disagreements(queue=disputed, include_settled=True)
    settled = next(r for r in shown.rows if r.item.position == 3)
    assert settled.settled_by == "carol"

    # A later decision by another adjudicator supersedes it.
    adjudication.result_settle(
        request=item.request, adjudicator=dave, quality=50, category="", tags=[], notes=""
    )
    assert Annotation.objects.get(pk=item.request_id).quality == 50
    shown = agreement.disagreements(queue=disputed, include_settled=True)
    assert next(r for r in shown.rows if r.item.position == 3).settled_by == "dave"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("decision", "param"),
    [
        ({"quality": None, "category": ""}, "quality"),
        ({"quality": 101}, "quality"),
        ({"quality": -1}, "quality"),
        ({"category": "superb"}, "category"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"notes": "n" * 10_001}, "notes"),
    ],
)
def test_a_bad_decision_is_refused_and_stores_nothing(owner, carol, decision, param):
    result = make_batch(owner, count=1).requests.get()
    decision = {"quality": 50, "category": "good", "tags": [], "notes": "", **decision}
    with pytest.raises(ApplicationError) as raised:
        adjudication.result_settle(request=result, adjudicator=carol, **decision)
    assert raised.value.param == param
    assert not Judgment.objects.exists()
    assert not Annotation.objects.exists()


@pytest.mark.django_db
def test_only_staff_settle(owner, django_user_model):
    result = make_batch(owner, count=1).requests.get()
    eve = django_user_model.objects.create_user("eve")
    with pytest.raises(ApplicationError) as raised:
        adjudication.result_settle(
            request=result, adjudicator=eve, quality=50, category="", tags=[], notes=""
        )
    assert raised.value.status == 403
    assert not Judgment.objects.exists()


@pytest.mark.django_db
def test_result_judgments_list_reviews_then_adjudications_with_history(owner, carol, dave):
    result = make_batch(owner, count=1).requests.get()
    judgments.judgment_update(request=result, reviewer=dave, changes={"quality": 40})
    judgments.judgment_update(request=result, reviewer=dave, changes={"quality": 45, "tags": ["a"]})
    adjudication.result_settle(
        request=result, adjudicator=carol, quality=60, category="good", tags=[], notes=""
    )
    shown = agreement.result_judgments(result=Request.objects.get(pk=result.pk))
    assert [(j.reviewer.username, j.role) for j in shown.judgments] == [
        ("dave", "review"),
        ("carol", "adjudication"),
    ]
    assert shown.history_total == 3
    latest, lines = shown.history[0]
    assert latest.editor == carol
    assert ("quality", "(none) → 60") in lines
    assert ("tags", "(none) → a") in shown.history[1][1]
    assert ("quality", "40 → 45") in shown.history[1][1]
