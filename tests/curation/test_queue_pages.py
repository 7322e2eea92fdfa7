"""Review queue pages in the viewer: list, create, progress, and the work page."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from batches.models import Request
from curation import queues
from curation.models import (
    Comparison,
    ItemReview,
    Judgment,
    JudgmentEdit,
    QueueItem,
    ReviewerToken,
    ReviewQueue,
    Star,
)
from curation.templatetags.curation import markdown
from tests.factories import make_batch, make_odd_batch

pytestmark = pytest.mark.django_db

ALL_FIELDS = ("star", "quality", "category", "tags", "notes")


@pytest.fixture
def batch(owner):
    return make_batch(owner, count=3)


def _queue(creator, batch, **spec) -> ReviewQueue:
    spec = {
        "name": "screening",
        "filter_query": f"batch={batch.public_id}",
        "fields": ALL_FIELDS,
        "instructions": "Score **clarity**.",
        **spec,
    }
    return queues.queue_create(spec=queues.QueueSpec(**spec), created_by=creator)


def _item_url(queue, item_id) -> str:
    return reverse("queue-item", args=[queue.pk, item_id])


def _start(client, queue) -> int:
    """Start reviewing; the item id the redirect leads to."""
    response = client.post(reverse("queue-next", args=[queue.pk]))
    assert response.status_code == 303
    match = re.fullmatch(rf"/queues/{queue.pk}/items/(\d+)/", response["Location"])
    assert match, response["Location"]
    return int(match.group(1))


def _form(batch, **overrides) -> dict:
    return {
        "name": "gold hunt",
        "kind": "results",
        "filter": f"batch={batch.public_id}",
        "reviewers_per_item": "1",
        "instructions": "Look for **clear** answers.",
        "fields": ["star", "quality"],
        "reservation_minutes": "10",
        **overrides,
    }


# --- List and create -----------------------------------------------------------------


def test_the_list_shows_every_queue_with_its_progress(carol, dave, carol_client, batch):
    mine = _queue(carol, batch, reviewers=(carol, dave))
    _queue(carol, batch, name="daves only", reviewers=(dave,))
    claimed = queues.claim_next(queue=mine, reviewer=carol)
    queues.item_submit(
        queue=mine,
        item_id=claimed.item_id,
        reviewer=carol,
        submission=queues.Submission(changes={"quality": 80}),
    )
    html = carol_client.get(reverse("queues")).content.decode()
    row = re.search(rf'<tr data-queue="{mine.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "screening" in row and "carol, dave" in row
    assert "1 / 3 (33%)" in row
    assert re.search(r'mine-done">1<', row)
    other = re.search(r'<tr data-queue="\d+">(.*?daves only.*?)</tr>', html, re.S).group(1)
    assert "not assigned" in other
    assert 'href="/queues/new"' in html


def test_a_queue_made_in_the_viewer_holds_the_filters_results(carol, dave, carol_client, batch):
    response = carol_client.post(
        reverse("queue-new"), _form(batch, reviewers=[carol.pk, dave.pk], reviewers_per_item="2")
    )
    queue = ReviewQueue.objects.get()
    assert response.status_code == 303
    assert response["Location"] == reverse("queue-detail", args=[queue.pk])
    assert (queue.name, queue.kind, queue.item_count) == ("gold hunt", "results", 3)
    assert queue.fields == ["star", "quality"]
    assert queue.reservation_seconds == 600 and queue.reviewers_per_item == 2
    assert set(queue.reviewers.all()) == {carol, dave}
    assert queue.created_by == carol
    assert QueueItem.objects.filter(queue=queue, open_slots=2).count() == 3


def test_a_pasted_results_url_is_taken_as_its_filter(carol_client, batch):
    url = f"http://localhost:8001/results/?batch={batch.public_id}"
    response = carol_client.post(reverse("queue-new"), _form(batch, filter=url))
    assert response.status_code == 303
    assert ReviewQueue.objects.get().filter_query == f"batch={batch.public_id}"


def test_the_form_says_what_the_filter_selects(carol_client, owner, batch):
    make_batch(owner, count=5, prefix="other")
    response = carol_client.get(reverse("queue-new"), {"filter": f"batch={batch.public_id}"})
    html = response.content.decode()
    assert response.status_code == 200
    assert f'value="batch={batch.public_id}"' in html
    assert "<strong>3</strong> results" in html
    assert f"Batch: {batch.public_id}" in html
    assert "Status: completed (the default)" in html
    # The results table links to it with its own filter.
    results = carol_client.get(reverse("results"), {"batch": batch.public_id}).content.decode()
    assert f'href="/queues/new?filter=batch%3D{batch.public_id}"' in results


def test_an_invalid_filter_in_the_link_is_said_not_crashed(carol_client):
    response = carol_client.get(reverse("queue-new"), {"filter": "quality_min=lots"})
    assert response.status_code == 200
    assert 'id="errors-filter-preview"' in response.content.decode()


def test_reviewers_to_choose_are_staff_and_agents(carol, carol_client, django_user_model):
    agent = django_user_model.objects.create_user("agent-7")
    ReviewerToken.objects.create(user=agent, key_hash="x" * 64, hint="abcd")
    django_user_model.objects.create_user("outsider")
    django_user_model.objects.create_user("gone", is_staff=True, is_active=False)
    html = carol_client.get(reverse("queue-new")).content.decode()
    select = re.search(r'<select name="reviewers".*?</select>', html, re.S).group(0)
    assert "carol" in select and "agent-7 (agent)" in select
    assert "outsider" not in select and "gone" not in select


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "   "}, "name", "This field is required."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"fields": []}, "fields", "Choose at least one field"),
        ({"fields": ["star", "mood"]}, "fields", "Choose fields from the list."),
        ({"reviewers_per_item": "6"}, "reviewers_per_item", "less than or equal to 5"),
        ({"reviewers_per_item": "two"}, "reviewers_per_item", "Enter a whole number."),
        ({"filter": "quality_min=lots"}, "filter", "Invalid filter"),
        ({"filter": "batch=batch_nope"}, "filter", "Invalid filter"),
        ({"filter": "q=no-such-words-anywhere"}, "filter", "nothing to review"),
        ({"filter": "x=" + "y" * 5000}, "filter", "at most 4000 characters"),
        ({"kind": "triage"}, "kind", "results or pairwise"),
        ({"kind": "pairwise", "fields": ["notes"]}, "batches", "exactly two batches"),
        ({"reservation_minutes": "0"}, "reservation_minutes", "greater than or equal to 1"),
        ({"reservation_minutes": "1441"}, "reservation_minutes", "less than or equal to 1440"),
        ({"instructions": "x" * 20_001}, "instructions", "at most 20000 characters"),
        ({"reviewers": ["999999"]}, "reviewers", "Choose reviewers from the list."),
        ({"reviewers": ["not-an-id"]}, "reviewers", "Choose reviewers from the list."),
    ],
)
def test_a_refused_queue_says_why_beside_the_field(carol_client, batch, overrides, field, message):
    response = carol_client.post(reverse("queue-new"), _form(batch, **overrides))
    html = response.content.decode()
    assert response.status_code == 400
    errors = re.search(rf'id="errors-{field}">(.*?)</p>', html, re.S)
    assert errors and message in errors.group(1), html[:3000]
    assert len(errors.group(1)) < 600  # no unbounded echo of the input
    assert not ReviewQueue.objects.exists()
    if "instructions" not in overrides:
        assert "Look for **clear** answers.</textarea>" in html  # what was typed is kept


def test_a_refusal_from_the_service_keeps_the_typed_values(carol, dave, carol_client, batch):
    _queue(carol, batch, name="gold hunt")
    response = carol_client.post(
        reverse("queue-new"), _form(batch, reviewers=[dave.pk], reviewers_per_item="2")
    )
    html = response.content.decode()
    assert response.status_code == 400
    # The first refusal the service finds: the name is taken.
    assert "exists already" in re.search(r'id="errors-name">(.*?)</p>', html, re.S).group(1)
    assert 'value="gold hunt"' in html
    assert re.search(rf'<option value="{dave.pk}" selected>', html)
    assert ReviewQueue.objects.count() == 1


def test_overlap_needs_enough_reviewers(dave, carol_client, batch):
    response = carol_client.post(
        reverse("queue-new"), _form(batch, reviewers=[dave.pk], reviewers_per_item="2")
    )
    assert response.status_code == 400
    assert "only 1 are assigned" in response.content.decode()


def test_a_pairwise_queue_compares_two_batches(owner, carol_client):
    first = make_batch(owner, model="model-a", count=3, prefix="c")
    second = make_batch(owner, model="model-b", count=2, prefix="c")
    response = carol_client.post(
        reverse("queue-new"),
        _form(
            first,
            kind="pairwise",
            filter="",
            batches=[first.public_id, second.public_id],
            fields=["notes"],
            blind="on",
        ),
    )
    assert response.status_code == 303
    queue = ReviewQueue.objects.get()
    assert (queue.kind, queue.blind, queue.item_count, queue.fields) == (
        "pairwise",
        True,
        2,
        ["notes"],
    )
    refused = carol_client.post(
        reverse("queue-new"),
        _form(
            first,
            name="stars too",
            kind="pairwise",
            batches=[first.public_id, second.public_id],
            fields=["star", "notes"],
        ),
    )
    assert refused.status_code == 400
    assert "records a verdict" in refused.content.decode()


# --- Progress and working --------------------------------------------------------------


def test_the_queue_page_shows_progress_instructions_and_history(carol, dave, carol_client, batch):
    queue = _queue(carol, batch, instructions="Score **clarity**. <script>alert(1)</script>")
    for reviewer in (carol, dave):
        claimed = queues.claim_next(queue=queue, reviewer=reviewer)
        queues.item_submit(
            queue=queue,
            item_id=claimed.item_id,
            reviewer=reviewer,
            submission=queues.Submission(star=True),
        )
    skipped = queues.claim_next(queue=queue, reviewer=carol)
    queues.item_skip(queue=queue, item_id=skipped.item_id, reviewer=carol)
    html = carol_client.get(reverse("queue-detail", args=[queue.pk])).content.decode()
    assert "2 of 3 items complete (66%)" in html
    carol_row = re.search(r'data-reviewer="carol">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r">(\d+)</td>", carol_row) == ["1", "1", "0"]
    assert "<strong>clarity</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    history = re.search(r'<ol class="history" id="history">(.*?)</ol>', html, re.S).group(1)
    assert history.count("<li>") == 2
    assert _item_url(queue, skipped.item_id) in history
    assert "Start reviewing" in html


def test_start_reviewing_reserves_an_item_and_opens_it(carol, carol_client, batch):
    queue = _queue(carol, batch)
    item_id = _start(carol_client, queue)
    review = ItemReview.objects.get()
    assert (review.item_id, review.reviewer, review.state) == (item_id, carol, "pending")
    # Again (a reload, another tab): the same item, not a second one.
    assert _start(carol_client, queue) == item_id
    assert ItemReview.objects.count() == 1
    html = carol_client.get(_item_url(queue, item_id)).content.decode()
    assert "Reserved for you until" in html
    assert "Candidate" in html and "says hire" in html  # the transcript and the response
    assert "temperature: 0.2" in html
    assert batch.public_id in html
    assert "<strong>clarity</strong>" in html


def test_the_item_page_marks_an_answer_that_was_cut_off(carol, carol_client, batch):
    Request.objects.filter(batch=batch).update(
        response={"choices": [{"message": {"content": "half an"}, "finish_reason": "length"}]}
    )
    queue = _queue(carol, batch)
    html = carol_client.get(_item_url(queue, _start(carol_client, queue))).content.decode()
    assert 'class="badge cut-off"' in html


def test_submit_and_next_records_the_judgment_and_moves_on(carol, carol_client, batch):
    queue = _queue(carol, batch)
    first = _start(carol_client, queue)
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, first]),
        {
            "star": "on",
            "quality": "85",
            "category": "excellent",
            "tags": "senior, rust ,, ",
            "notes": "Clear.",
        },
    )
    assert response.status_code == 303
    second = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert second != first
    request = QueueItem.objects.get(pk=first).request
    judgment = Judgment.objects.get(request=request, reviewer=carol)
    assert (judgment.quality, judgment.category, judgment.notes) == (85, "excellent", "Clear.")
    assert sorted(t.name for t in judgment.tags.all()) == ["rust", "senior"]
    assert Star.objects.filter(request=request, user=carol).exists()
    assert ItemReview.objects.get(item_id=first).state == "done"
    assert ItemReview.objects.get(item_id=second).state == "pending"
    assert request.annotation.quality == 85

    # Back to it: the form shows what was submitted; submitting again edits it.
    html = carol_client.get(_item_url(queue, first)).content.decode()
    assert 'value="85"' in html and 'value="rust, senior"' in html
    assert re.search(r'<option value="excellent" selected>', html)
    assert re.search(r'name="star" id="id_star" checked', html)
    assert "submitting again changes your judgment" in html
    assert 'id="skip"' not in html  # a submitted item is not skipped
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, first]),
        {"star": "on", "quality": "", "category": "excellent", "tags": "senior", "notes": ""},
    )
    # Submit-and-next from an old item returns to the reserved one.
    assert response["Location"] == _item_url(queue, second)
    judgment.refresh_from_db()
    assert (judgment.quality, judgment.notes) == (None, "")  # cleared
    assert JudgmentEdit.objects.filter(judgment=judgment).count() == 2
    assert QueueItem.objects.get(pk=first).done_count == 1


def test_the_last_item_leads_back_to_the_queue_page(carol, carol_client, owner):
    queue = _queue(carol, make_batch(owner, count=1, prefix="solo"), fields=("quality",))
    only = _start(carol_client, queue)
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, only]), {"quality": "40"}
    )
    assert response.status_code == 303
    assert response["Location"] == reverse("queue-detail", args=[queue.pk]) + "?finished=1"
    html = carol_client.get(response["Location"]).content.decode()
    assert "Nothing left for you in this queue" in html
    assert carol_client.post(reverse("queue-next", args=[queue.pk]))["Location"].endswith(
        "?finished=1"
    )


def test_skip_passes_the_item_on_and_back_returns_to_it(carol, dave, carol_client, batch):
    queue = _queue(carol, batch)
    first = _start(carol_client, queue)
    response = carol_client.post(reverse("queue-item-skip", args=[queue.pk, first]))
    assert response.status_code == 303
    second = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert second != first
    assert ItemReview.objects.get(item_id=first, reviewer=carol).state == "skipped"
    assert not Judgment.objects.exists()
    # Back, from the new item: the one just skipped.
    html = carol_client.get(_item_url(queue, second)).content.decode()
    assert f'id="back-link" href="{_item_url(queue, first)}"' in html
    back = carol_client.get(_item_url(queue, first)).content.decode()
    assert "You skipped this item" in back and 'id="back-link"' not in back
    # Dave gets the skipped item.
    assert queues.claim_next(queue=queue, reviewer=dave).item_id == first


@pytest.mark.parametrize(
    ("posted", "field", "message"),
    [
        ({"quality": "500"}, "quality", "Quality is a score from 0 to 100."),
        ({"quality": "-1"}, "quality", "Quality is a score from 0 to 100."),
        ({"quality": "lots"}, "quality", "Quality is a whole number from 0 to 100."),
        ({"category": "stellar" * 1000}, "category", "Unknown category &#x27;stellarstellar"),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, "tags", "At most 20 tags"),
        ({"tags": "ok, " + "x" * 51}, "tags", "Tag 2: Ensure this field has no more than 50"),
        ({"notes": "n" * 10_001}, "notes", "no more than 10000 characters"),
        ({"notes": "nul\x00byte"}, "notes", "Null characters are not allowed."),
    ],
)
def test_bad_input_is_shown_on_the_item_page_and_nothing_is_stored(
    carol, carol_client, batch, posted, field, message
):
    queue = _queue(carol, batch)
    item_id = _start(carol_client, queue)
    typed = {"star": "on", "quality": "70", "category": "good", "tags": "a, b", "notes": "kept"}
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, item_id]), {**typed, **posted}
    )
    html = response.content.decode()
    assert response.status_code == 400
    errors = re.search(rf'id="errors-{field}">(.*?)</p>', html, re.S)
    assert errors and message in errors.group(1), html[-4000:]
    assert len(errors.group(1)) < 600
    # The reviewer's other typed values are still in the form.
    for name, value in typed.items():
        if name in posted or name == "star":
            continue
        if name == "category":
            assert '<option value="good" selected>' in html
        elif name == "notes":
            assert ">kept</textarea>" in html
        else:
            assert f'value="{value}"' in html
    if field == "notes" and len(posted["notes"]) > 10_000:
        assert posted["notes"] in html  # 10,001 characters typed are not thrown away
    assert not Judgment.objects.exists() and not Star.objects.exists()
    assert ItemReview.objects.get().state == "pending"


def test_an_empty_submission_asks_for_something(carol, carol_client, batch):
    queue = _queue(carol, batch, fields=("quality", "notes"))
    item_id = _start(carol_client, queue)
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, item_id]), {"quality": "", "notes": ""}
    )
    assert response.status_code == 400
    assert "Nothing to record" in response.content.decode()
    assert not Judgment.objects.exists()


def test_fields_the_queue_does_not_ask_for_are_ignored(carol, carol_client, batch):
    queue = _queue(carol, batch, fields=("quality",))
    item_id = _start(carol_client, queue)
    html = carol_client.get(_item_url(queue, item_id)).content.decode()
    assert 'name="quality"' in html
    assert 'name="category"' not in html and 'name="star"' not in html
    response = carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, item_id]),
        {"quality": "60", "category": "good", "star": "on", "notes": "sneaky"},
    )
    assert response.status_code == 303
    judgment = Judgment.objects.get()
    assert (judgment.quality, judgment.category, judgment.notes) == (60, "", "")
    assert not Star.objects.exists()


def test_the_reviewer_is_the_session_never_the_form(carol, dave, carol_client, batch):
    queue = _queue(carol, batch)
    item_id = _start(carol_client, queue)
    carol_client.post(
        reverse("queue-item-submit", args=[queue.pk, item_id]),
        {"quality": "50", "reviewer": str(dave.pk), "user": "dave"},
    )
    assert Judgment.objects.get().reviewer == carol


# --- Pairwise ---------------------------------------------------------------------------


@pytest.fixture
def pairwise(owner, carol):
    first = make_batch(owner, model="model-alpha", count=3, prefix="c")
    second = make_batch(owner, model="model-beta", count=3, prefix="c")
    # The factory's answers name their model; blind review needs answers that do not.
    for request in Request.objects.all():
        request.response["choices"][0]["message"]["content"] = f"answer {request.pk}"
        request.save(update_fields=["response"])
    return _queue(
        carol,
        first,
        name="which is better",
        kind="pairwise",
        filter_query="",
        compare_batches=(first.public_id, second.public_id),
        fields=("notes",),
        blind=True,
    )


def test_a_blind_pair_hides_names_until_the_verdict(carol, carol_client, pairwise):
    item_id = _start(carol_client, pairwise)
    html = carol_client.get(_item_url(pairwise, item_id)).content.decode()
    assert "model-alpha" not in html and "model-beta" not in html
    assert "batch_" not in html.split("<main>", 1)[1]
    assert "Left is better" in html and "Right is better" in html
    item = QueueItem.objects.get(pk=item_id)
    left_key = re.search(r'name="verdict" value="(a|b)"[^>]*id="verdict-left"', html).group(1)
    response = carol_client.post(
        reverse("queue-item-submit", args=[pairwise.pk, item_id]),
        {"verdict": left_key, "notes": "more specific"},
    )
    assert response.status_code == 303
    comparison = Comparison.objects.get()
    winner = item.request_id if left_key == "a" else item.other_id
    assert (comparison.outcome, comparison.winner_id, comparison.blind) == ("winner", winner, True)
    after = carol_client.get(_item_url(pairwise, item_id)).content.decode()
    assert "model-alpha" in after and "model-beta" in after
    assert Judgment.objects.get().notes == "more specific"


@pytest.mark.parametrize("verdict", ["tie", "both_bad"])
def test_tie_and_both_bad_are_recorded(carol, carol_client, pairwise, verdict):
    item_id = _start(carol_client, pairwise)
    response = carol_client.post(
        reverse("queue-item-submit", args=[pairwise.pk, item_id]), {"verdict": verdict}
    )
    assert response.status_code == 303
    comparison = Comparison.objects.get()
    assert (comparison.outcome, comparison.winner_id) == (verdict, None)
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("verdict", ["", "left", "winner", "c" * 5000])
def test_a_pair_needs_a_verdict(carol, carol_client, pairwise, verdict):
    item_id = _start(carol_client, pairwise)
    response = carol_client.post(
        reverse("queue-item-submit", args=[pairwise.pk, item_id]),
        {"verdict": verdict, "notes": "typed first"},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Choose a verdict" in re.search(r'id="errors-verdict">(.*?)</p>', html, re.S).group(1)
    assert ">typed first</textarea>" in html
    assert "c" * 100 not in html
    assert not Comparison.objects.exists() and not Judgment.objects.exists()


# --- Access, not found, no change on GET, CSRF ----------------------------------------------


def test_a_reviewer_not_assigned_is_told_so(carol, dave, batch, client):
    queue = _queue(carol, batch, reviewers=(carol,))
    item_id = queues.claim_next(queue=queue, reviewer=carol).item_id
    client.force_login(dave)
    responses = [
        client.get(_item_url(queue, item_id)),
        client.post(reverse("queue-next", args=[queue.pk])),
        client.post(reverse("queue-item-submit", args=[queue.pk, item_id]), {"quality": "1"}),
        client.post(reverse("queue-item-skip", args=[queue.pk, item_id])),
    ]
    for response in responses:
        assert response.status_code == 403
        assert "not among the reviewers of this queue" in response.content.decode()
    detail = client.get(reverse("queue-detail", args=[queue.pk]))
    assert detail.status_code == 200
    assert "You are not among this queue" in detail.content.decode()
    assert "Start reviewing" not in detail.content.decode()
    assert list(ItemReview.objects.values_list("reviewer", flat=True)) == [carol.pk]
    assert not Judgment.objects.exists()


def test_unknown_queues_and_items_are_not_found(carol, carol_client, batch, owner):
    queue = _queue(carol, batch)
    other = _queue(carol, make_batch(owner, count=1, prefix="x"), name="other")
    foreign = QueueItem.objects.get(queue=other).pk
    huge = 2**64
    for url in [
        reverse("queue-detail", args=[999_999]),
        reverse("queue-detail", args=[huge]),
        _item_url(queue, foreign),
        _item_url(queue, huge),
        reverse("queue-item", args=[huge, 1]),
    ]:
        response = carol_client.get(url)
        assert response.status_code == 404, url
        assert "No such" in response.content.decode()
    for name in ("queue-item-submit", "queue-item-skip"):
        response = carol_client.post(reverse(name, args=[queue.pk, foreign]), {"quality": "5"})
        assert response.status_code == 404
    assert carol_client.post(reverse("queue-next", args=[huge])).status_code == 404
    assert not ItemReview.objects.exists() and not Judgment.objects.exists()


def test_pages_change_nothing_on_get(carol, carol_client, batch):
    queue = _queue(carol, batch)
    item_id = QueueItem.objects.filter(queue=queue).first().pk
    for url in [
        reverse("queues"),
        reverse("queue-detail", args=[queue.pk]),
        _item_url(queue, item_id),
        reverse("dashboard"),
        reverse("queue-new") + "?filter=batch%3D" + batch.public_id,
    ]:
        assert carol_client.get(url).status_code == 200
    for name, args in [
        ("queue-next", [queue.pk]),
        ("queue-item-submit", [queue.pk, item_id]),
        ("queue-item-skip", [queue.pk, item_id]),
    ]:
        assert carol_client.get(reverse(name, args=args)).status_code == 405
    assert not ItemReview.objects.exists()
    assert QueueItem.objects.filter(queue=queue, open_slots=1).count() == 3
    assert ReviewQueue.objects.count() == 1


def test_posts_need_the_csrf_token(carol, batch):
    queue = _queue(carol, batch)
    item_id = QueueItem.objects.filter(queue=queue).first().pk
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    for url, data in [
        (reverse("queue-new"), _form(batch, name="forged")),
        (reverse("queue-next", args=[queue.pk]), {}),
        (reverse("queue-item-submit", args=[queue.pk, item_id]), {"quality": "1"}),
        (reverse("queue-item-skip", args=[queue.pk, item_id]), {}),
    ]:
        assert client.post(url, data).status_code == 403
    assert ReviewQueue.objects.count() == 1
    assert not ItemReview.objects.exists() and not Judgment.objects.exists()
    # With the token from the page, the same post works.
    html = client.get(reverse("queue-detail", args=[queue.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(reverse("queue-next", args=[queue.pk]), {"csrfmiddlewaretoken": token})
    assert response.status_code == 303


def test_the_pages_are_for_staff_logins(batch, client, django_user_model):
    assert client.get(reverse("queues"))["Location"].startswith("/admin/login/")
    client.force_login(django_user_model.objects.create_user("agent-only"))
    assert client.get(reverse("queue-new")).status_code == 302


# --- Dashboard and instructions ----------------------------------------------------------


def test_the_dashboard_shows_each_queues_progress(carol, carol_client, batch):
    queue = _queue(carol, batch)
    claimed = queues.claim_next(queue=queue, reviewer=carol)
    queues.item_submit(
        queue=queue,
        item_id=claimed.item_id,
        reviewer=carol,
        submission=queues.Submission(star=True),
    )
    html = carol_client.get(reverse("dashboard")).content.decode()
    section = re.search(r'id="dashboard-queues">(.*?)</table>', html, re.S).group(1)
    assert "screening" in section and "1 / 3 (33%)" in section
    assert re.search(r'mine-done">1<', section)


def test_the_overview_is_a_fixed_number_of_queries(carol, batch, django_assert_max_num_queries):
    for i in range(5):
        _queue(carol, batch, name=f"q{i}", reviewers=(carol,))
    with django_assert_max_num_queries(4):
        rows = queues.queues_overview(user=carol)
        assert [row.may_work for row in rows] == [True] * 5


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("<script>alert(1)</script>", "<script>"),
        ("<img src=x onerror=alert(1)>", "<img"),
        ("[click](javascript:alert(1))", 'href="javascript'),
        ("[click](data:text/html,<b>x</b>)", 'href="data'),
        ("![pixel](http://tracker.example/p.png)", "<img"),
    ],
)
def test_instructions_cannot_carry_html_or_script(text, absent):
    assert absent not in markdown(text)


def test_instructions_keep_their_formatting_and_web_links():
    html = markdown("# Rules\n\n- **clear**\n- see [guide](https://example.com/g), [x](/results/)")
    assert "<h1>Rules</h1>" in html and "<strong>clear</strong>" in html
    assert '<a href="https://example.com/g">guide</a>' in html
    assert '<a href="/results/">x</a>' in html


def test_every_odd_stored_result_renders_as_a_queue_item(carol, carol_client, owner):
    batch = make_odd_batch(owner)
    queue = _queue(carol, batch)
    for item in QueueItem.objects.filter(queue=queue):
        response = carol_client.get(_item_url(queue, item.pk))
        assert response.status_code == 200, item.request.custom_id
        html = response.content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
