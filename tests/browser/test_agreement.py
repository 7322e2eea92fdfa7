"""Agreement and adjudication in real Chromium: two reviewers worked a queue; the
numbers show, a disagreement is settled, and the decision becomes the metadata."""

import re

import pytest
from playwright.sync_api import expect

from curation import queues
from curation.models import Annotation, Judgment, QueueItem
from tests.browser.conftest import log_in
from tests.factories import make_batch

pytestmark = pytest.mark.browser


def _work(queue, reviewer, said):
    for quality, category, star in said:
        claimed = queues.claim_next(queue=queue, reviewer=reviewer)
        queues.item_submit(
            queue=queue,
            item_id=claimed.item_id,
            reviewer=reviewer,
            submission=queues.Submission(
                star=star, changes={"quality": quality, "category": category}
            ),
        )


def test_agreement_shows_and_a_disagreement_is_settled(page, owner, carol, dave):
    batch = make_batch(owner, count=4)
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="hiring screen",
            filter_query=f"batch={batch.public_id}",
            fields=("star", "quality", "category"),
            reviewers_per_item=2,
        ),
        created_by=carol,
    )
    _work(
        queue,
        carol,
        [(90, "excellent", True), (85, "good", True), (30, "good", False), (50, "good", False)],
    )
    _work(
        queue,
        dave,
        [
            (88, "excellent", True),
            (35, "needs_improvement", False),
            (25, "good", False),
            (55, "good", False),
        ],
    )
    disputed = QueueItem.objects.select_related("request").get(queue=queue, position=2)

    log_in(page, "carol", "carol-pw")
    page.click("header nav >> text=Agreement")
    row = page.locator("#agreement-queues tr", has_text="hiring screen")
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_have_text("4")
    row.locator("a", has_text="hiring screen").click()

    expect(page.locator("#agreement-summary .overlap")).to_have_text("4")
    expect(page.locator("#metric-quality-alpha .figure")).to_have_text(re.compile(r"^0\.\d{3}$"))
    expect(page.locator("#metric-stars .figure")).to_have_text("75%")
    expect(page.locator("#metric-preferences .figure")).to_have_text("—")
    expect(page.locator("#metric-preferences .reason")).to_contain_text("does not ask")
    expect(page.locator("#pairs tbody tr")).to_have_count(1)
    expect(page.locator("#pairs tbody tr td").first).to_have_text("carol · dave")

    page.click("text=Disagreements →")
    article = page.locator(f"#item-{disputed.pk}")
    expect(article.locator(".badge.differs").first).to_contain_text("quality 35 to 85")
    expect(article.locator("tr.opinion")).to_have_count(2)
    expect(article.locator('tr[data-reviewer="dave"] .quality')).to_have_text("35")
    form = article.locator("form.settle")
    expect(form.locator("input[name=quality]")).to_have_value("60")  # the derived mean
    form.locator("input[name=quality]").fill("72")
    form.locator("select[name=category]").select_option("good")
    form.locator("input[name=tags]").fill("borderline")
    form.locator("textarea[name=notes]").fill("Solid answer, one gap.")
    form.locator("button[type=submit]").click()

    expect(page.locator("#settled-notice")).to_contain_text("Settled cand-2")
    expect(page.locator(f"#item-{disputed.pk}")).to_have_count(0)
    annotation = Annotation.objects.get(pk=disputed.request_id)
    assert (annotation.quality, annotation.category, annotation.notes, annotation.edited_by) == (
        72,
        "good",
        "Solid answer, one gap.",
        carol,
    )
    assert list(annotation.tags.values_list("name", flat=True)) == ["borderline"]
    decision = Judgment.objects.get(request=disputed.request, role="adjudication")
    assert decision.reviewer == carol

    page.check("input[name=include_settled]")
    page.click("#disagreement-options button[type=submit]")
    expect(page.locator(f"#item-{disputed.pk} .settled-by")).to_contain_text("settled by carol")

    page.locator(f"#item-{disputed.pk} header a").first.click()
    judgments = page.locator("#judgments")
    expect(judgments.locator("tr.judgment")).to_have_count(3)
    adjudication = judgments.locator("tr.role-adjudication")
    expect(adjudication).to_contain_text("carol")
    expect(adjudication.locator(".badge")).to_have_text("adjudication")
    expect(adjudication).to_contain_text("72")
