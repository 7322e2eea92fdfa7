from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from batches.models import Batch, Chunk, Request
from curation import selectors, services
from curation.models import Annotation, Preference, Star, Tag
from curation.selectors import compare_batches, compare_item, dashboard
from tests.factories import make_batch


@pytest.fixture
def pair(owner):
    first = make_batch(owner, model="tiny-chat", count=4, prefix="c")
    second = make_batch(owner, model="other-model", count=3, prefix="c")  # lacks c-3
    return first, second


def test_compare_shows_one_input_and_every_models_response(pair, carol):
    first, second = pair
    item = compare_item(batches=[first, second], custom_id=None, user=carol)
    assert item.custom_id == "c-0" and item.previous is None and item.next == "c-1"
    assert [r.batch.model for r in item.responses] == ["tiny-chat", "other-model"]
    assert item.messages[1]["content"] == "Candidate 0 writes Rust and Python."
    last = compare_item(batches=[first, second], custom_id="c-2", user=carol)
    assert (last.previous, last.next) == ("c-1", None)  # c-3 is not in both batches


def test_compare_page_lists_batches_and_navigates(pair, carol_client):
    first, second = pair
    query = f"batch={first.public_id}&batch={second.public_id}"
    html = carol_client.get(f"/compare/?{query}&custom_id=c-1").content.decode()
    assert html.count('class="candidate') == 2
    assert html.count("Candidate 1 writes Rust") == 1  # the prompt once
    assert "tiny-chat says hire 1" in html and "other-model says hire 1" in html
    escaped = query.replace("&", "&amp;")
    assert f"?{escaped}&amp;custom_id=c-2" in html and f"?{escaped}&amp;custom_id=c-0" in html
    assert carol_client.get("/compare/?batch=batch_nope&batch=x").status_code == 404


def test_batches_of_one_model_are_told_apart_by_their_metadata(owner, carol_client):
    """Two sampling settings of the same model (as `manage.py demo` makes):
    each batch's metadata labels it in the picker and above its answer."""
    greedy = make_batch(owner, count=2, prefix="c")
    sampled = make_batch(owner, count=2, prefix="c")
    Batch.objects.filter(pk=greedy.pk).update(metadata={"demo": "greedy"})
    Batch.objects.filter(pk=sampled.pk).update(metadata={"demo": "sampled", "note": "x" * 500})
    html = carol_client.get(f"/compare/?batch={greedy.public_id}&batch={sampled.public_id}")
    text = html.content.decode()
    assert text.count("demo: greedy") == 2 and text.count("demo: sampled") == 2
    assert "x" * 100 not in text  # a long value is cut
    Batch.objects.filter(pk=sampled.pk).update(metadata=["not", "a", "dict"])
    assert carol_client.get("/compare/").status_code == 200


def test_picking_a_winner_stars_it_and_records_preferences(pair, carol_client, carol):
    first, second = pair
    a = first.requests.get(custom_id="c-1")
    b = second.requests.get(custom_id="c-1")
    response = carol_client.post(
        "/api/compare/winner", {"winner": b.pk, "candidates": [a.pk, b.pk]}, "application/json"
    )
    assert response.status_code == 200
    assert Star.objects.filter(request=b, user=carol).exists()
    assert list(Preference.objects.values_list("chosen", "rejected", "user")) == [
        (b.pk, a.pk, carol.pk)
    ]
    carol_client.post(
        "/api/compare/winner", {"winner": a.pk, "candidates": [a.pk, b.pk]}, "application/json"
    )
    assert list(Preference.objects.values_list("chosen", "rejected")) == [(a.pk, b.pk)]
    item = compare_item(batches=[first, second], custom_id="c-1", user=carol)
    assert item.winner_id == a.pk


def test_a_winner_must_be_among_responses_to_the_same_input(pair, carol_client):
    first, second = pair
    a = first.requests.get(custom_id="c-1")
    other = second.requests.get(custom_id="c-2")
    response = carol_client.post(
        "/api/compare/winner",
        {"winner": a.pk, "candidates": [a.pk, other.pk]},
        "application/json",
    )
    assert response.status_code == 400
    assert "same input" in response.json()["error"]["message"]
    assert not Preference.objects.exists() and not Star.objects.exists()


def test_compare_batches_keeps_the_order_given(pair):
    first, second = pair
    assert compare_batches([second.public_id, first.public_id]) == [second, first]


def test_review_shows_the_whole_result_and_moves_within_the_filter(owner, carol_client, carol):
    batch = make_batch(owner, count=5)
    rows = list(batch.requests.order_by("pk"))
    Star.objects.create(request=rows[1], user=carol)
    Star.objects.create(request=rows[3], user=carol)
    html = carol_client.get(f"/results/{rows[3].pk}/?starred=yes").content.decode()
    assert "You evaluate candidates." in html and "Candidate 3 writes Rust" in html
    assert "tiny-chat says hire 3" in html
    assert "temperature: 0.2" in html and "12 prompt + 4 completion tokens" in html
    assert "30 ms" in html
    assert f'id="next-link" href="/results/{rows[1].pk}/?starred=yes"' in html
    assert 'id="prev-link"' not in html
    for key in ("j / k", "star or unstar", "quality 20 / 40 / 60 / 80 / 100", "edit the notes"):
        assert key in html
    assert carol_client.get("/results/999999/").status_code == 404


def test_dashboard_counts_and_charts(owner, carol_client, carol, dave):
    batch = make_batch(owner, count=4)
    rows = list(batch.requests.all())
    Star.objects.create(request=rows[0], user=carol)
    Star.objects.create(request=rows[0], user=dave)
    Star.objects.create(request=rows[1], user=carol)
    for row, quality in zip(rows, (95, 91, 15, None), strict=True):
        services.annotation_update(request=row, user=carol, changes={"quality": quality})
    Chunk.objects.create(
        batch=batch,
        index=0,
        first_line=1,
        last_line=4,
        size=4,
        status=Chunk.Status.DONE,
        finished_at=timezone.now() - timedelta(minutes=5),
    )

    stats = dashboard()
    assert (stats.totals["completed"], stats.starred_results, stats.stars) == (4, 2, 3)
    assert stats.annotated == 4
    assert stats.stars_per_reviewer == [
        {"reviewer": "carol", "stars": 2},
        {"reviewer": "dave", "stars": 1},
    ]
    assert dict(stats.quality_histogram) == {
        **{f"{i * 10}-{i * 10 + 9}": 0 for i in range(9)},
        "10-19": 1,
        "90-100": 2,
    }
    assert len(stats.throughput) == 24 and sum(n for _, n in stats.throughput) == 4
    html = carol_client.get("/").content.decode()
    assert batch.public_id in html and "<svg" in html and "cdn" not in html.lower()
    progress = carol_client.get(f"/api/batches/progress?id={batch.public_id}").json()
    assert progress["batches"][0]["completed_requests"] == 4


def test_pages_render_endpoints_and_limits_from_the_code(owner, carol_client, monkeypatch):
    result = make_batch(owner, count=3).requests.order_by("pk").first()
    html = carol_client.get("/").content.decode()
    assert f'data-url="{reverse("api-batch-progress")}"' in html
    assert f'data-terminal-statuses="{" ".join(Batch.TERMINAL_STATUSES)}"' in html
    assert 'role="img" aria-label="Quality scores"' in html

    html = carol_client.get(f"/results/{result.pk}/").content.decode()
    for url in (
        reverse("api-gold-star"),
        reverse("api-tags"),
        reverse("api-annotation", args=[result.pk]),
    ):
        assert f'data-url="{url}"' in html
    assert f'maxlength="{Annotation.NOTES_MAX_LENGTH}"' in html
    assert f"at most {Annotation.MAX_TAGS} tags of {Tag.NAME_MAX_LENGTH} characters" in html

    monkeypatch.setattr(selectors, "COUNT_CAP", 2)
    assert "More than 2 results" in carol_client.get("/results/").content.decode()
    # The script takes every endpoint from the page, never from a copy of its own.
    assert "/api/" not in (settings.BASE_DIR / "static/viewer/viewer.js").read_text()


def test_every_asset_is_served_locally(carol_client, owner):
    make_batch(owner)
    for page in ("/", "/results/", "/compare/"):
        html = carol_client.get(page).content.decode()
        assert "http://" not in html.replace("http://testserver", "")
        assert "https://" not in html


def test_admin_bulk_actions_report_counts(owner, admin_client, django_user_model):
    batch = make_batch(owner, count=3)
    ids = [str(pk) for pk in batch.requests.values_list("pk", flat=True)]
    admin = get_user_model().objects.get(username="admin")
    changelist = "/admin/batches/request/"

    def act(action, **extra):
        data = {"action": action, "_selected_action": ids, **extra}
        return admin_client.post(changelist, data, follow=True).content.decode()

    assert "Starred 3 result(s)." in act("star")
    assert Star.objects.filter(user=admin).count() == 3
    assert "Starred 0 result(s)." in act("star")
    assert "Removed 3 star(s)." in act("unstar")
    assert "Set the category of 3 result(s)." in act("set_category", category="good")
    assert "Tagged 3 result(s) with senior." in act("add_tag", tag="senior")
    assert "Tagged 0 result(s)" in act("add_tag", tag="Senior")
    assert "Choose a category" in act("set_category", category="")
    assert set(Request.objects.values_list("annotation__category", flat=True)) == {"good"}


@pytest.mark.parametrize("ahead", [timedelta(minutes=61), timedelta(days=3)])
def test_the_dashboard_counts_a_chunk_finished_in_the_future_in_the_last_hour(
    owner, carol_client, ahead
):
    """A worker's clock can run ahead, and the hour can turn between the chunk's
    write and the dashboard's read: such a chunk is counted now, not a KeyError."""
    batch = make_batch(owner, count=4)
    Chunk.objects.create(
        batch=batch,
        index=0,
        first_line=1,
        last_line=4,
        size=4,
        status=Chunk.Status.DONE,
        finished_at=timezone.now() + ahead,
    )
    stats = dashboard()
    assert len(stats.throughput) == 24 and stats.throughput[-1][1] == 4
    assert carol_client.get("/").status_code == 200


# --- What a heavy reviewer sees beside each result -------------------------------


def test_the_table_shows_the_batch_and_marks_an_answer_cut_at_max_tokens(owner, carol_client):
    batch = make_batch(owner, count=2, prefix="c")
    cut = batch.requests.get(custom_id="c-0")
    cut.response["choices"][0]["finish_reason"] = "length"
    cut.save(update_fields=["response"])
    Batch.objects.filter(pk=batch.pk).update(metadata={"run": "nightly"})
    html = carol_client.get("/results/").content.decode()
    assert html.count('class="badge cut-off"') == 1
    assert f"?batch={batch.public_id}" in html and "run: nightly" in html
    review = carol_client.get(reverse("review", args=[cut.pk])).content.decode()
    assert 'class="badge cut-off"' in review


def test_a_result_links_to_its_comparison_with_every_batch_that_answered_it(owner, carol_client):
    first = make_batch(owner, model="tiny-chat", count=2, prefix="c")
    second = make_batch(owner, model="other-model", count=1, prefix="c")  # c-0 only
    third = make_batch(owner, model="third-model", count=2, prefix="c")
    both = first.requests.get(custom_id="c-0")
    html = carol_client.get(reverse("review", args=[both.pk])).content.decode()
    link = f"/compare/?batch={first.public_id}&amp;batch={third.public_id}&amp;custom_id=c-0"
    assert link in html and f"batch={second.public_id}" in html
    assert "all 3 side by side" in html
    lonely = first.requests.get(custom_id="c-1")
    html = carol_client.get(reverse("review", args=[lonely.pk])).content.decode()
    assert f"batch={second.public_id}" not in html and "all 3" not in html
    # The link opens that input's comparison.
    compare = carol_client.get(link.replace("&amp;", "&")).content.decode()
    assert compare.count('class="candidate') == 2


def test_the_dashboard_shows_each_batchs_file_metadata_and_curation_counts(
    owner, carol_client, carol, dave
):
    batch = make_batch(owner, count=3, prefix="c")
    Batch.objects.filter(pk=batch.pk).update(metadata={"demo": "greedy"})
    a, b, _ = batch.requests.order_by("line")
    services.star_set(request=a, user=carol, starred=True)
    services.star_set(request=a, user=dave, starred=True)
    services.star_set(request=b, user=carol, starred=True)
    Annotation.objects.create(request=a, quality=90, edited_by=carol)
    html = carol_client.get("/").content.decode()
    row = html[html.index(f'data-batch="{batch.public_id}"') :]
    row = row[: row.index("</tr>")]
    assert "in.jsonl" in row and "demo: greedy" in row
    assert '<td class="num">2</td>' in row and '<td class="num">1</td>' in row
