"""Review queues worked in real Chromium by two staff reviewers at the same time."""

import re

import pytest
from playwright.sync_api import expect

from batches.models import Request
from curation import queues
from curation.models import Comparison, ItemReview, Judgment, QueueItem
from tests.browser.conftest import log_in
from tests.factories import make_batch

pytestmark = pytest.mark.browser

ITEM_URL = re.compile(r".*/queues/\d+/items/(\d+)/$")
FINISHED_URL = re.compile(r".*/queues/\d+/\?finished=1$")


@pytest.fixture
def second_page(browser, live_server):
    """Another browser context (its own cookies): a second reviewer beside `page`."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    other = context.new_page()
    errors = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    yield other
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _queue(creator, batch, **spec):
    spec = {
        "name": "screening",
        "filter_query": f"batch={batch.public_id}",
        "fields": ("quality",),
        "instructions": "Score **clarity** from 0 to 100.",
        **spec,
    }
    return queues.queue_create(spec=queues.QueueSpec(**spec), created_by=creator)


def _item_id(page) -> int:
    page.wait_for_url(ITEM_URL)
    return int(ITEM_URL.match(page.url).group(1))


def _start(page, queue) -> int:
    page.goto(f"/queues/{queue.pk}/")
    page.click("#start-reviewing")
    return _item_id(page)


def _submit(page, quality: str, *, keyboard: bool) -> None:
    page.fill("#id_quality", quality)
    if keyboard:
        page.locator("#id_quality").press("Control+Enter")
    else:
        page.click("#submit-next")


def test_two_reviewers_share_a_queue_one_item_each(page, second_page, owner, carol, dave):
    queue = _queue(carol, make_batch(owner, count=4), reviewers=(carol, dave))
    log_in(page, "carol", "carol-pw")
    log_in(second_page, "dave", "dave-pw")

    # Both start at once: the reservation keeps them on different items.
    carols = _start(page, queue)
    daves = _start(second_page, queue)
    assert carols != daves
    expect(page.locator(".instructions strong")).to_have_text("clarity")
    expect(page.locator("#reservation")).to_contain_text("Reserved for you until")

    seen = {carols, daves}
    _submit(page, "80", keyboard=True)  # Ctrl+Enter: submit and next
    _submit(second_page, "60", keyboard=False)
    carols, daves = _item_id(page), _item_id(second_page)
    assert carols != daves and not {carols, daves} & seen
    _submit(page, "81", keyboard=True)
    _submit(second_page, "61", keyboard=False)
    for each in (page, second_page):
        each.wait_for_url(FINISHED_URL)
        expect(each.locator("#nothing-left")).to_be_visible()

    assert ItemReview.objects.filter(state="done").count() == 4
    assert sorted(QueueItem.objects.values_list("done_count", flat=True)) == [1, 1, 1, 1]
    assert sorted(Judgment.objects.values_list("reviewer__username", "quality")) == [
        ("carol", 80),
        ("carol", 81),
        ("dave", 60),
        ("dave", 61),
    ]

    # Progress on the queue page (per reviewer), the list, and the dashboard.
    page.reload()  # carol's page may have been drawn before dave's last submit
    expect(page.locator("#queue-progress")).to_contain_text("4 of 4 items complete (100%)")
    expect(page.locator('#reviewer-progress tr[data-reviewer="carol"] .done')).to_have_text("2")
    expect(page.locator('#reviewer-progress tr[data-reviewer="dave"] .done')).to_have_text("2")
    expect(page.locator("#history li")).to_have_count(2)
    page.click("nav >> text=Queues")
    row = page.locator(f'#queues tr[data-queue="{queue.pk}"]')
    expect(row).to_contain_text("4 / 4 (100%)")
    expect(row.locator(".mine-done")).to_have_text("2")
    second_page.click("nav >> text=Dashboard")
    row = second_page.locator(f'#dashboard-queues tr[data-queue="{queue.pk}"]')
    expect(row).to_contain_text("4 / 4 (100%)")
    expect(row.locator(".mine-done")).to_have_text("2")


def test_an_item_that_needs_two_reviewers_reaches_both(page, second_page, owner, carol, dave):
    queue = _queue(
        carol,
        make_batch(owner, count=3),
        reviewers=(carol, dave),
        reviewers_per_item=2,
        fields=("quality", "notes"),
    )
    log_in(page, "carol", "carol-pw")
    log_in(second_page, "dave", "dave-pw")

    first = _start(page, queue)
    assert _start(second_page, queue) == first  # overlap: the same item for both
    page.fill("#id_notes", "Clear enough.")
    _submit(page, "70", keyboard=True)
    second = _item_id(page)
    expect(page.locator("#reservation")).to_contain_text("Reserved for you")
    _submit(second_page, "90", keyboard=True)
    assert _item_id(second_page) == second
    item = QueueItem.objects.get(pk=first)
    assert item.done_count == 2  # complete
    assert sorted(Judgment.objects.values_list("reviewer__username", "quality")) == [
        ("carol", 70),
        ("dave", 90),
    ]
    assert item.request.annotation.quality == 80  # the mean of both

    # Keyboard: s skips, b goes back through what the reviewer finished.
    page.locator("body").press("s")
    third = _item_id(page)
    assert third not in (first, second)
    assert ItemReview.objects.get(item_id=second, reviewer__username="carol").state == "skipped"
    page.locator("body").press("b")
    page.wait_for_url(re.compile(rf".*/items/{second}/$"))
    expect(page.locator("#reservation")).to_contain_text("You skipped this item")
    page.locator("body").press("b")
    page.wait_for_url(re.compile(rf".*/items/{first}/$"))
    expect(page.locator("#id_quality")).to_have_value("70")
    expect(page.locator("#id_notes")).to_have_value("Clear enough.")
    # Going back changed nothing: carol still holds the third item.
    assert ItemReview.objects.get(item_id=third, reviewer__username="carol").state == "pending"

    # Dave's view of the queue shows the finished overlap item.
    second_page.goto(f"/queues/{queue.pk}/")
    expect(second_page.locator("#queue-progress")).to_contain_text("1 of 3 items complete")


def test_a_blind_pairwise_queue_hides_names_until_the_verdict(page, owner, carol):
    first = make_batch(owner, model="model-alpha", count=3, prefix="c")
    second = make_batch(owner, model="model-beta", count=3, prefix="c")
    # The factory's answers name their model; blind review needs answers that do not.
    for request in Request.objects.all():
        request.response["choices"][0]["message"]["content"] = f"answer number {request.pk}"
        request.save(update_fields=["response"])
    queue = _queue(
        carol,
        first,
        name="alpha or beta",
        kind="pairwise",
        filter_query="",
        compare_batches=(first.public_id, second.public_id),
        fields=(),
        blind=True,
    )
    log_in(page, "carol", "carol-pw")

    item = _start(page, queue)
    main = page.locator("main")
    expect(main).to_contain_text("model and batch hidden until your verdict")
    for name in ("model-alpha", "model-beta", first.public_id, second.public_id):
        expect(main).not_to_contain_text(name)
    expect(page.locator(".side header strong")).to_have_text(["Left", "Right"])
    left = page.locator("#verdict-left").get_attribute("value")
    page.locator("body").press("1")  # left is better
    tie_item = _item_id(page)
    assert tie_item != item
    page.locator("body").press("t")
    bad_item = _item_id(page)
    page.locator("body").press("x")
    page.wait_for_url(FINISHED_URL)

    pairs = {i.pk: i for i in QueueItem.objects.filter(queue=queue)}
    verdicts = {
        c.candidates_key: (c.outcome, c.winner_id, c.blind) for c in Comparison.objects.all()
    }

    def key(item_id):
        return Comparison.key([pairs[item_id].request_id, pairs[item_id].other_id])

    winner = pairs[item].request_id if left == "a" else pairs[item].other_id
    assert verdicts == {
        key(item): ("winner", winner, True),
        key(tie_item): ("tie", None, True),
        key(bad_item): ("both_bad", None, True),
    }

    # With a verdict given, the names show, and the chosen side is marked.
    page.goto(f"/queues/{queue.pk}/items/{item}/")
    expect(main).to_contain_text("model-alpha")
    expect(main).to_contain_text("model-beta")
    expect(page.locator(".side.chosen")).to_have_attribute("data-position", "left")
    expect(page.locator("#verdict-left")).to_have_class(re.compile(r"\bchosen\b"))
