"""The reviewer's main flows in real Chromium: log in, star, annotate, compare, shortcuts."""

import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from batches.models import Batch
from curation.models import Annotation, Preference, Star, Tag
from exports.models import Export
from tests.browser.conftest import log_in
from tests.factories import make_batch

pytestmark = pytest.mark.browser


def test_log_in_and_star_from_the_table(page, owner, carol):
    batch = make_batch(owner, count=3)
    log_in(page, "carol", "carol-pw")
    expect(page.locator("#batches")).to_contain_text(batch.public_id)

    page.click("text=All results")
    row = page.locator("tr", has_text="cand-1")
    row.locator("button.star").click()
    expect(row.locator("button.star")).to_have_attribute("aria-pressed", "true")
    expect(row.locator(".starred-by")).to_have_text("carol")
    assert list(Star.objects.values_list("request__custom_id", "user__username")) == [
        ("cand-1", "carol")
    ]

    page.reload()  # no reload was needed to star; the star survives one
    row = page.locator("tr", has_text="cand-1")
    expect(row.locator("button.star")).to_have_class(re.compile(r"\bon\b"))
    row.locator("button.star").click()
    expect(row.locator("button.star")).to_have_attribute("aria-pressed", "false")
    expect(row.locator(".starred-by")).to_have_text("")
    assert not Star.objects.exists()


def test_edit_metadata_without_leaving_the_page(page, owner, carol):
    result = make_batch(owner, count=1).requests.get()
    Tag.objects.create(name="strong-communication")
    log_in(page, "carol", "carol-pw")
    page.goto(f"/results/{result.pk}/")
    url = page.url

    form = page.locator("form.annotation")
    form.locator("input[name=quality]").fill("85")
    expect(form.locator(".quality-value")).to_have_text("85")
    form.locator("select[name=category]").select_option("excellent")
    form.locator("input[name=tags]").fill("senior, str")
    expect(form.locator("datalist option")).to_have_attribute(
        "value", "senior, strong-communication"
    )
    form.locator("input[name=tags]").fill("senior, strong-communication")
    form.locator("textarea[name=notes]").fill("Concise and specific.")
    form.locator("button[type=submit]").click()
    expect(form.locator(".edited")).to_contain_text("Last edited by carol")
    assert page.url == url

    annotation = Annotation.objects.get()
    assert (annotation.quality, annotation.category, annotation.notes) == (
        85,
        "excellent",
        "Concise and specific.",
    )
    assert sorted(annotation.tags.values_list("name", flat=True)) == [
        "senior",
        "strong-communication",
    ]

    form.locator("input[name=tags]").fill("x" * 60)
    form.locator("button[type=submit]").click()
    expect(form.locator(".errors")).to_contain_text("Invalid 'tags")
    assert Annotation.objects.get().tags.count() == 2  # the refused save changed nothing


def test_compare_two_batches_and_pick_a_winner(page, owner, carol):
    first = make_batch(owner, model="tiny-chat", count=3, prefix="c")
    second = make_batch(owner, model="other-model", count=3, prefix="c")
    log_in(page, "carol", "carol-pw")
    page.click("text=Compare models")
    page.check(f"input[value={first.public_id}]")
    page.check(f"input[value={second.public_id}]")
    page.click("form.compare-pick button[type=submit]")

    cards = page.locator(".candidate")
    expect(cards).to_have_count(2)
    expect(page.locator(".prompt-once")).to_contain_text("Candidate 0 writes Rust")
    chosen = cards.filter(has_text="other-model says hire 0")
    expect(cards.filter(has_text="tiny-chat says hire 0")).to_have_count(1)
    chosen.locator(".pick-winner").click()
    expect(chosen).to_have_class(re.compile(r"\bwinner\b"))
    expect(chosen.locator(".pick-winner")).to_have_text("Winner ✓")
    expect(chosen.locator(".starred-by")).to_have_text("carol")
    winner = second.requests.get(custom_id="c-0")
    loser = first.requests.get(custom_id="c-0")
    assert list(Preference.objects.values_list("chosen", "rejected")) == [(winner.pk, loser.pk)]

    page.click("#next-link")
    expect(page.locator("h1")).to_contain_text("c-1")
    page.click("#prev-link")
    expect(page.locator(".candidate.winner")).to_contain_text("other-model")


def test_keyboard_shortcuts_on_the_review_page(page, owner, carol):
    rows = list(make_batch(owner, count=3).requests.order_by("pk"))
    log_in(page, "carol", "carol-pw")
    page.goto(f"/results/{rows[1].pk}/")
    expect(page.locator("#shortcuts")).to_contain_text("star or unstar")
    expect(page.locator("#shortcuts")).to_be_hidden()

    page.keyboard.press("s")
    expect(page.locator("h1 button.star")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("4")
    expect(page.locator(".quality-value")).to_have_text("80")
    expect(page.locator("form.annotation .edited")).to_contain_text("carol")
    page.keyboard.press("e")
    expect(page.locator("textarea[name=notes]")).to_be_focused()
    page.keyboard.type("js and ks")  # typing in the notes is not a shortcut
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_have_class(re.compile(r"\bopen\b"))
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_hidden()

    assert Star.objects.filter(request=rows[1], user=carol).exists()
    assert Annotation.objects.get(request=rows[1]).quality == 80

    # The notes were typed but not saved: j saves them before it moves on.
    page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/results/{rows[0].pk}/"))
    assert Annotation.objects.get(request=rows[1]).notes == "js and ks"
    page.keyboard.press("k")
    page.wait_for_url(re.compile(rf"/results/{rows[1].pk}/"))
    expect(page.locator("textarea[name=notes]")).to_have_value("js and ks")
    page.keyboard.press("j")  # nothing unsaved: no save, straight on
    page.wait_for_url(re.compile(rf"/results/{rows[0].pk}/"))
    assert Annotation.objects.get(request=rows[1]).notes == "js and ks"


def test_unsaved_metadata_that_cannot_be_saved_keeps_the_reviewer_on_the_page(page, owner, carol):
    rows = list(make_batch(owner, count=2).requests.order_by("pk"))
    log_in(page, "carol", "carol-pw")
    page.goto(f"/results/{rows[1].pk}/")
    tags = ", ".join(f"tag-{i}" for i in range(21))  # one over the limit
    page.fill("input[name=tags]", tags)
    page.click("#next-link")
    expect(page.locator("form.annotation .errors")).not_to_be_empty()
    assert page.url.endswith(f"/results/{rows[1].pk}/")
    expect(page.locator("input[name=tags]")).to_have_value(tags)  # nothing lost
    assert not Annotation.objects.exists()


def test_the_dashboard_follows_running_batches(page, owner, carol):
    batch = make_batch(owner, count=4)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.IN_PROGRESS, completed_requests=1)
    log_in(page, "carol", "carol-pw")
    row = page.locator(f"tr[data-batch={batch.public_id}]")
    expect(row.locator(".counts")).to_have_text("1 / 4")

    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.COMPLETED, completed_requests=3, failed_requests=1
    )
    page.evaluate("refreshBatches()")  # what the page does every 5 s
    expect(row.locator(".counts")).to_have_text("4 / 4 (1 failed)")
    expect(row.locator(".status")).to_have_text("completed")
    expect(row.locator("progress")).to_have_js_property("value", 100)
    assert row.get_attribute("data-active") == "false"


def test_export_panel_counts_then_downloads_the_chosen_format(page, owner, carol):
    import json

    rows = list(make_batch(owner, count=5).requests.order_by("pk"))
    for row in rows[:3]:
        Star.objects.create(request=row, user=carol)
    Annotation.objects.create(request=rows[0], quality=90, edited_by=carol)
    log_in(page, "carol", "carol-pw")
    page.click("text=Export datasets")
    expect(page.locator("#export-count")).to_have_text("3 rows")

    page.select_option("#export-format", "finetuning")
    expect(page.locator("input[name=split]")).to_be_visible()
    expect(page.locator("input[name=limit]")).to_be_hidden()
    page.select_option("select[name=filter]", "quality_high")
    expect(page.locator("#export-count")).to_have_text("1 row")
    page.select_option("select[name=filter]", "all")
    expect(page.locator("#export-count")).to_have_text("3 rows")

    with page.expect_download() as download_info:
        page.click("#export-download")
    download = download_info.value
    assert download.suggested_filename.startswith("gold_star_finetuning_")
    lines = [json.loads(x) for x in Path(download.path()).read_text().splitlines()]
    assert len(lines) == 3 and all(list(x) == ["messages"] for x in lines)
    assert lines[0]["messages"][-1]["role"] == "assistant"

    page.goto("/exports/")
    expect(page.locator("#past-exports tbody tr")).to_have_count(1)
    expect(page.locator("#past-exports")).to_contain_text("finetuning_data.jsonl")


# Replies to the page's fetch() are handed out by the test, in any order. Every
# step after a reply is a microtask, so one message-channel task later the page
# has handled it (the fake clock does not touch MessageChannel).
FAKE_FETCH = """() => {
  window.requests = [];
  window.fetch = (url) => new Promise((resolve) => window.requests.push({ url, resolve }));
  window.reply = async (index, body) => {
    window.requests[index].resolve({ ok: true, status: 200, json: async () => body });
    await new Promise((done) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = done;
      channel.port2.postMessage(null);
    });
  };
}"""


def test_tag_suggestions_wait_for_a_pause_and_ignore_stale_replies(page, owner, carol):
    result = make_batch(owner, count=1).requests.get()
    log_in(page, "carol", "carol-pw")
    page.clock.install(time=datetime(2026, 1, 5, 9, 0))
    page.goto(f"/results/{result.pk}/")
    page.clock.pause_at(datetime(2026, 1, 5, 10, 0))
    page.evaluate(FAKE_FETCH)
    tags = page.locator("input[name=tags]")
    requests = lambda: page.evaluate("window.requests.map((r) => r.url)")  # noqa: E731

    tags.press_sequentially("sen")
    page.clock.run_for(199)
    assert requests() == []  # still typing
    page.clock.run_for(1)
    assert requests() == ["/api/tags?q=sen"]
    tags.press_sequentially("ior, st")
    page.clock.run_for(200)
    assert requests() == ["/api/tags?q=sen", "/api/tags?q=st"]

    page.evaluate("window.reply(1, { tags: ['strong-communication'] })")
    options = page.locator("datalist option")
    expect(options).to_have_attribute("value", "senior, strong-communication")
    page.evaluate("window.reply(0, { tags: ['senior', 'sentinel'] })")  # overtaken
    assert options.evaluate_all("(all) => all.map((o) => o.value)") == [
        "senior, strong-communication"
    ]


def test_the_export_count_shows_the_answer_to_the_latest_choice(page, owner, carol):
    """Two counts in flight, answered in reverse order: the slower, older one
    must not overwrite the newer (a real flake of the export test showed it)."""
    make_batch(owner, count=2)
    log_in(page, "carol", "carol-pw")
    page.goto("/exports/")
    expect(page.locator("#export-count")).not_to_have_text("")
    page.evaluate(FAKE_FETCH)
    page.select_option("#export-format", "finetuning")
    page.select_option("select[name=filter]", "quality_high")
    requests = lambda: page.evaluate("window.requests.length")  # noqa: E731
    assert requests() == 2
    page.evaluate("window.reply(1, { rows: 1 })")
    expect(page.locator("#export-count")).to_have_text("1 row")
    page.evaluate("window.reply(0, { rows: 7 })")  # overtaken
    assert page.locator("#export-count").text_content() == "1 row"


def test_a_double_click_picks_the_winner_once(page, owner, carol):
    first = make_batch(owner, model="tiny-chat", count=1, prefix="c")
    second = make_batch(owner, model="other-model", count=1, prefix="c")
    log_in(page, "carol", "carol-pw")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"/compare/?batch={first.public_id}&batch={second.public_id}")

    chosen = page.locator(".candidate", has_text="other-model")
    chosen.locator(".pick-winner").dblclick()
    expect(chosen).to_have_class(re.compile(r"\bwinner\b"))
    expect(chosen.locator(".pick-winner")).to_have_text("Winner ✓")
    expect(page.locator(".pick-winner:disabled")).to_have_count(0)  # enabled again
    expect(chosen.locator(".starred-by")).to_have_text("carol")
    assert [urlparse(url).path for url in posts] == ["/api/compare/verdict"]
    winner = second.requests.get()
    loser = first.requests.get()
    assert list(Preference.objects.values_list("chosen", "rejected", "user")) == [
        (winner.pk, loser.pk, carol.pk)
    ]


def test_stars_charts_and_help_have_accessible_names(page, owner, carol):
    result = make_batch(owner, count=1).requests.get()
    Annotation.objects.create(request=result, quality=95, edited_by=carol)
    log_in(page, "carol", "carol-pw")
    for title, headings in (
        ("Requests finished per hour (last 24 h)", ["Hour", "Requests"]),
        ("Quality scores", ["Score", "Results"]),
    ):
        expect(page.get_by_role("img", name=title)).to_be_visible()
        table = page.get_by_role("table", name=title)  # for screen readers only
        expect(table.get_by_role("columnheader")).to_have_text(headings)
    last_bin = page.get_by_role("table", name="Quality scores").locator("tbody tr").last
    expect(last_bin.locator("th, td")).to_have_text(["90-100", "1"])

    page.goto(f"/results/{result.pk}/")
    star = page.locator("h1").get_by_role("button", name="Gold-star this result")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")

    toggle = page.get_by_role("button", name="Keyboard shortcuts (?)")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(page.locator("#shortcuts")).to_be_hidden()


def test_single_key_shortcuts_can_be_turned_off_and_stay_off(page, owner, carol):
    """WCAG 2.1.4: with the switch off, j/k/s/1-5/e do nothing; ? still shows the help."""
    rows = list(make_batch(owner, count=3).requests.order_by("pk"))
    log_in(page, "carol", "carol-pw")
    stars = []
    page.on("request", lambda r: stars.append(r.url) if "/api/gold-star" in r.url else None)
    url = f"/results/{rows[1].pk}/"
    page.goto(url)
    switch = page.get_by_label("Single-key shortcuts")
    expect(switch).to_be_checked()
    switch.uncheck()

    page.reload()  # remembered in this browser
    switch = page.get_by_label("Single-key shortcuts")
    expect(switch).not_to_be_checked()
    page.locator("h1 code").click()  # keys go to the page, not the switch
    for key in ("s", "4", "j", "k"):
        page.keyboard.press(key)
    page.keyboard.press("e")
    expect(page.locator("textarea[name=notes]")).not_to_be_focused()
    page.keyboard.press("?")  # the help still answers
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator(".quality-value")).not_to_have_text("80")

    # Turned on again, "s" stars: the one request to the star endpoint is this
    # one (key events are handled in order), so the earlier "s" sent none.
    switch.check()
    page.locator("h1 code").click()
    page.keyboard.press("s")
    expect(page.locator("h1 button.star")).to_have_attribute("aria-pressed", "true")
    assert page.url.endswith(url)  # j and k did not move
    assert len(stars) == 1
    assert not Annotation.objects.exists()  # "4" saved no quality
    assert Star.objects.filter(request=rows[1], user=carol).exists()


def test_an_expired_session_on_the_export_panel_says_to_log_in(page, owner, carol):
    """The panel's endpoints answer 403 JSON, which the page shows (no script error)."""
    Star.objects.create(request=make_batch(owner, count=1).requests.get(), user=carol)
    log_in(page, "carol", "carol-pw")
    page.goto("/exports/")
    expect(page.locator("#export-count")).to_have_text("1 row")
    page.context.clear_cookies()  # the session expires

    page.select_option("#export-format", "csv")
    errors = page.locator("#export-errors")
    expect(errors).to_have_text("Log in to the viewer with a staff account.")
    page.evaluate("document.getElementById('export-errors').textContent = ''")
    page.click("#export-download")
    expect(errors).to_have_text("Log in to the viewer with a staff account.")
    assert not Export.objects.exists()
