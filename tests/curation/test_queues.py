"""Review queues: claims, reservations, overlap, skips and submissions (services)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.exceptions import ApplicationError
from curation import queues
from curation.models import Annotation, ItemReview, Judgment, JudgmentEdit, QueueItem
from tests.factories import make_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(owner):
    return make_batch(owner, count=4)


def _queue(carol, batch, **spec):
    spec = {
        "name": "screening",
        "filter_query": f"batch={batch.public_id}",
        "fields": ("star", "quality", "category", "tags", "notes"),
        **spec,
    }
    return queues.queue_create(spec=queues.QueueSpec(**spec), created_by=carol)


def test_each_item_goes_to_one_reviewer_unless_it_needs_more(carol, dave, batch):
    queue = _queue(carol, batch)
    first = queues.claim_next(queue=queue, reviewer=carol)
    second = queues.claim_next(queue=queue, reviewer=dave)
    assert first.item_id != second.item_id
    # A reviewer holding a reservation gets it again.
    assert queues.claim_next(queue=queue, reviewer=carol).pk == first.pk

    overlap = _queue(carol, batch, name="overlap", reviewers_per_item=2)
    a = queues.claim_next(queue=overlap, reviewer=carol)
    b = queues.claim_next(queue=overlap, reviewer=dave)
    assert a.item_id == b.item_id


def test_submit_records_a_judgment_with_history_and_moves_on(carol, dave, batch):
    queue = _queue(carol, batch, reviewers_per_item=2)
    claimed = queues.claim_next(queue=queue, reviewer=carol)
    queues.item_submit(
        queue=queue,
        item_id=claimed.item_id,
        reviewer=carol,
        submission=queues.Submission(star=True, changes={"quality": 90, "category": "good"}),
    )
    other = queues.claim_next(queue=queue, reviewer=dave)
    assert other.item_id == claimed.item_id
    queues.item_submit(
        queue=queue,
        item_id=other.item_id,
        reviewer=dave,
        submission=queues.Submission(changes={"quality": 71, "category": "excellent"}),
    )
    request_id = QueueItem.objects.get(pk=claimed.item_id).request_id
    annotation = Annotation.objects.get(pk=request_id)
    assert annotation.quality == 81  # the mean, rounded half up
    assert annotation.category == "excellent"  # a tie goes to the latest edited
    assert Judgment.objects.filter(request_id=request_id).count() == 2
    assert JudgmentEdit.objects.filter(judgment__request_id=request_id).count() == 2
    assert queues.claim_next(queue=queue, reviewer=carol).item_id != claimed.item_id
    progress = queues.queue_progress(queue=queue)
    assert (progress.complete, progress.done, progress.pending) == (1, 2, 1)


def test_a_reservation_that_runs_out_goes_back_to_the_queue(carol, dave, batch):
    queue = _queue(carol, batch)
    claimed = queues.claim_next(queue=queue, reviewer=carol)
    ItemReview.objects.filter(pk=claimed.pk).update(
        reserved_until=timezone.now() - timedelta(seconds=1)
    )
    assert queues.claim_next(queue=queue, reviewer=dave).item_id == claimed.item_id
    # Carol's late submission is still recorded.
    queues.item_submit(
        queue=queue,
        item_id=claimed.item_id,
        reviewer=carol,
        submission=queues.Submission(changes={"quality": 10}),
    )
    assert Judgment.objects.get(reviewer=carol).quality == 10


def test_a_skipped_item_goes_to_someone_else_and_never_back(carol, dave, batch):
    queue = _queue(carol, batch)
    claimed = queues.claim_next(queue=queue, reviewer=carol)
    queues.item_skip(queue=queue, item_id=claimed.item_id, reviewer=carol)
    assert queues.claim_next(queue=queue, reviewer=dave).item_id == claimed.item_id
    assert queues.claim_next(queue=queue, reviewer=carol).item_id != claimed.item_id


def test_fields_the_queue_does_not_ask_for_are_refused(carol, batch):
    queue = _queue(carol, batch, fields=("quality",))
    claimed = queues.claim_next(queue=queue, reviewer=carol)
    with pytest.raises(ApplicationError, match="not category"):
        queues.item_submit(
            queue=queue,
            item_id=claimed.item_id,
            reviewer=carol,
            submission=queues.Submission(changes={"category": "good"}),
        )


def test_a_slot_given_back_behind_a_reviewer_is_served_to_them_first(carol, dave, owner):
    batch = make_batch(owner, count=6)
    queue = _queue(carol, batch)
    first = queues.claim_next(queue=queue, reviewer=dave)
    # Carol works ahead while Dave holds the first item.
    for _ in range(3):
        claimed = queues.claim_next(queue=queue, reviewer=carol)
        queues.item_submit(
            queue=queue,
            item_id=claimed.item_id,
            reviewer=carol,
            submission=queues.Submission(changes={"quality": 50}),
        )
    assert claimed.position == 4
    # Dave gives his item back: it is behind Carol's frontier, and comes to her next.
    queues.item_skip(queue=queue, item_id=first.item_id, reviewer=dave)
    assert queues.claim_next(queue=queue, reviewer=carol).item_id == first.item_id


def test_working_an_item_out_of_order_does_not_hide_the_ones_before_it(carol, owner):
    batch = make_batch(owner, count=4)
    queue = _queue(carol, batch)
    last = QueueItem.objects.get(queue=queue, position=4)
    queues.item_skip(queue=queue, item_id=last.pk, reviewer=carol)
    positions = []
    while (claimed := queues.claim_next(queue=queue, reviewer=carol)) is not None:
        positions.append(claimed.position)
        queues.item_submit(
            queue=queue,
            item_id=claimed.item_id,
            reviewer=carol,
            submission=queues.Submission(changes={"quality": 50}),
        )
    assert positions == [1, 2, 3]
