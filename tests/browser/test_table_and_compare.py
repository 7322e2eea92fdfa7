"""The results table's sorting and bulk actions, and blind compare with tie and
both-bad, in real Chromium."""

import re

import pytest
from playwright.sync_api import expect

from batches.models import Request
from curation.models import Annotation, Comparison, Judgment, Star, Tag
from tests.browser.conftest import log_in
from tests.factories import make_batch

pytestmark = pytest.mark.browser


def custom_ids(page) -> list[str]:
    return page.locator("table.results tbody tr td:nth-child(2) a").all_text_contents()


def test_clicking_headers_sorts_and_the_sort_survives_filtering(page, owner, carol):
    batch = make_batch(owner, count=4, prefix="r")
    rows = list(batch.requests.order_by("line"))
    for row, quality in zip(rows, [40, None, 90, 60], strict=True):
        if quality is not None:
            Annotation.objects.create(request=row, quality=quality)
    for row, latency in zip(rows, [5, 300, 20, None], strict=True):
        Request.objects.filter(pk=row.pk).update(latency_ms=latency)
    log_in(page, "carol", "carol-pw")
    page.goto("/results/")
    expect(page.locator("table.results tbody tr")).to_have_count(4)

    page.get_by_role("link", name="Quality").click()
    page.wait_for_url(re.compile(r"sort=-quality"))
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Quality ▼")
    assert custom_ids(page) == ["r-2", "r-3", "r-0", "r-1"]  # unscored last

    page.get_by_role("link", name="Quality ▼").click()
    page.wait_for_url(re.compile(r"sort=quality(&|$)"))
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Quality ▲")
    assert custom_ids(page) == ["r-0", "r-3", "r-2", "r-1"]  # unscored still last

    page.get_by_role("link", name="Latency").click()
    page.wait_for_url(re.compile(r"sort=-latency"))
    assert custom_ids(page) == ["r-1", "r-2", "r-0", "r-3"]

    page.fill("input[name=quality_min]", "30")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"quality_min=30"))
    assert "sort=-latency" in page.url
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Latency ▼")
    assert custom_ids(page) == ["r-2", "r-0", "r-3"]

    page.locator("table.results tbody tr", has_text="r-2").locator("td:nth-child(2) a").click()
    page.wait_for_url(re.compile(r"/results/\d+/"))
    page.keyboard.press("j")  # the next row in the table's order
    expect(page.locator("h1")).to_contain_text("r-0")


def test_select_rows_then_star_and_tag_them_in_place(page, owner, carol):
    batch = make_batch(owner, count=4, prefix="r")
    a, b, c, d = batch.requests.order_by("line")
    Tag.objects.create(name="strong-communication")
    log_in(page, "carol", "carol-pw")
    page.goto("/results/")
    bar = page.locator("#bulk-bar")
    expect(bar).to_be_hidden()

    row = lambda r: page.locator(f'table.results tr[data-result-id="{r.pk}"]')  # noqa: E731
    row(a).locator(".select-row").check()
    row(c).locator(".select-row").check()
    expect(bar).to_be_visible()
    expect(bar.locator(".bulk-count")).to_have_text("2 results selected")
    bar.get_by_role("button", name="★ Star").click()
    expect(row(a).locator("button.star")).to_have_attribute("aria-pressed", "true")
    expect(row(c).locator(".starred-by")).to_have_text("carol")
    expect(row(b).locator("button.star")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#toast")).to_have_text("Starred 2 results")
    assert sorted(Star.objects.filter(user=carol).values_list("request", flat=True)) == [a.pk, c.pk]

    tag = bar.locator("input[name=tag]")
    tag.fill("strong")
    expect(bar.locator("datalist option")).to_have_attribute("value", "strong-communication")
    tag.fill("strong-communication")
    bar.get_by_role("button", name="Add tag").click()
    expect(row(a).locator("td.tags")).to_have_text("strong-communication")
    expect(row(c).locator("td.tags")).to_have_text("strong-communication")
    expect(row(b).locator("td.tags")).to_have_text("")
    expect(tag).to_have_value("")
    assert sorted(
        Judgment.objects.filter(reviewer=carol, tags__name="strong-communication").values_list(
            "request", flat=True
        )
    ) == [a.pk, c.pk]

    page.locator("#select-page").check()
    expect(bar.locator(".bulk-count")).to_have_text("4 results selected")
    bar.get_by_role("button", name="Unstar").click()
    for r in (a, b, c, d):
        expect(row(r).locator("button.star")).to_have_attribute("aria-pressed", "false")
    assert not Star.objects.exists()
    row(d).locator(".select-row").uncheck()
    expect(page.locator("#select-page")).not_to_be_checked()
    bar.get_by_role("button", name="Clear selection").click()
    expect(bar).to_be_hidden()

    page.reload()  # the changes were the server's, not only the page's
    expect(row(a).locator("td.tags")).to_have_text("strong-communication")


def test_a_refused_bulk_tag_changes_nothing_and_says_why(page, owner, carol):
    result = make_batch(owner, count=1).requests.get()
    log_in(page, "carol", "carol-pw")
    page.goto("/results/")
    page.locator(".select-row").check()
    page.evaluate(
        "document.querySelector('#bulk-bar input[name=tag]').removeAttribute('maxlength')"
    )
    page.locator("#bulk-bar input[name=tag]").fill("x" * 60)
    page.locator("#bulk-bar").get_by_role("button", name="Add tag").click()
    expect(page.locator("#toast")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#toast")).to_contain_text("tag")
    assert not Judgment.objects.filter(request=result).exists()


def test_blind_compare_hides_names_until_a_verdict_and_records_tie_and_both_bad(page, owner, carol):
    first = make_batch(owner, model="tiny-chat", count=2, prefix="c")
    second = make_batch(owner, model="other-model", count=2, prefix="c")
    log_in(page, "carol", "carol-pw")
    page.goto("/compare/")
    page.check(f"input[value={first.public_id}]")
    page.check(f"input[value={second.public_id}]")
    page.check("input[name=blind]")
    page.click("form.compare-pick button[type=submit]")
    page.wait_for_url(re.compile(r"blind=1"))

    headers = page.locator(".candidate header")
    expect(headers).to_have_count(2)
    expect(headers.nth(0)).to_contain_text("Response A")
    for name in ("tiny-chat", "other-model", first.public_id, second.public_id):
        expect(page.locator(".side-by-side header")).not_to_contain_text([name, name])
    expect(page.locator(".side-by-side .review-link a")).to_have_count(0)

    page.keyboard.press("t")
    expect(page.locator(".verdict-badge")).to_have_text("Tie")
    expect(page.locator(".side-by-side")).to_contain_text("tiny-chat")
    expect(page.locator(".candidate", has_text="tiny-chat says").locator("header")).to_contain_text(
        first.public_id
    )
    expect(page.locator(".side-by-side .review-link a")).to_have_count(2)
    comparison = Comparison.objects.get(custom_id="c-0")
    assert (comparison.user, comparison.outcome, comparison.blind) == (carol, "tie", True)

    page.reload()
    expect(page.locator(".verdict-badge")).to_have_text("Tie")
    expect(page.locator(".candidate header").nth(0)).to_contain_text(
        re.compile("tiny-chat|other-model")
    )

    page.click("#next-link")
    page.wait_for_url(re.compile(r"blind=1&custom_id=c-1"))
    expect(page.locator(".candidate header", has_text="tiny-chat")).to_have_count(0)
    page.get_by_role("button", name="Both bad").click()
    expect(page.locator(".verdict-badge")).to_have_text("Both bad")
    expect(page.locator(".candidate header", has_text="other-model")).to_have_count(1)
    comparison = Comparison.objects.get(custom_id="c-1")
    assert (comparison.outcome, comparison.winner, comparison.blind) == ("both_bad", None, True)

    # Changing the verdict once the names are known is not blind any more.
    page.keyboard.press("1")
    first_card = page.locator(".candidate").nth(0)
    expect(first_card).to_have_class(re.compile(r"\bwinner\b"))
    expect(page.locator(".verdict-badge")).to_have_text("")
    comparison = Comparison.objects.get(custom_id="c-1")
    assert comparison.outcome == "winner" and comparison.blind is False
    assert comparison.winner_id == int(first_card.get_attribute("data-result-id"))

    page.reload()
    expect(page.locator(".candidate.winner")).to_have_count(1)
    expect(page.locator(".candidate.winner .pick-winner")).to_have_text("Winner ✓")
    page.click("#prev-link")
    expect(page.locator(".verdict-badge")).to_have_text("Tie")


def test_compare_keys_respect_the_single_key_opt_out(page, owner, carol):
    first = make_batch(owner, model="tiny-chat", count=1, prefix="c")
    second = make_batch(owner, model="other-model", count=1, prefix="c")
    log_in(page, "carol", "carol-pw")
    page.goto(f"/compare/?batch={first.public_id}&batch={second.public_id}")
    page.get_by_label("Single-key shortcuts").uncheck()
    page.locator("h1").click()
    page.keyboard.press("x")
    page.keyboard.press("?")  # help still answers
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#shortcuts")).to_contain_text("both bad")
    assert not Comparison.objects.exists()
    page.get_by_label("Single-key shortcuts").check()
    page.locator("h1").click()
    page.keyboard.press("x")
    expect(page.locator(".verdict-badge")).to_have_text("Both bad")
    assert Comparison.objects.get().outcome == "both_bad"
