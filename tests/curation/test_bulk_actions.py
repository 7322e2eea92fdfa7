"""Bulk star and bulk tag from the results table: POST /api/results/bulk-star and
/api/results/bulk-tag (session, CSRF, staff), attributed to the session's user."""

import pytest
from django.test import Client

from curation import judgments
from curation.models import Annotation, Judgment, JudgmentEdit, Star, Tag
from curation.selectors import BULK_MAX
from tests.factories import make_batch

STAR = "/api/results/bulk-star"
TAG = "/api/results/bulk-tag"


@pytest.fixture
def rows(owner):
    return list(make_batch(owner, count=4).requests.order_by("pk"))


def post(client, url, body):
    return client.post(url, body, "application/json")


def test_bulk_star_stars_only_what_is_new_and_returns_the_rows(rows, carol_client, carol, dave):
    a, b, c, d = rows
    Star.objects.create(request=a, user=dave)
    Star.objects.create(request=b, user=carol)
    response = post(carol_client, STAR, {"result_ids": [a.pk, b.pk, c.pk], "starred": True})
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] == 2  # b was starred already
    assert set(Star.objects.filter(user=carol).values_list("request", flat=True)) == {
        a.pk,
        b.pk,
        c.pk,
    }
    states = {row["result_id"]: row for row in body["results"]}
    assert set(states) == {a.pk, b.pk, c.pk}
    assert states[a.pk]["starred"] is True
    assert [s["user"] for s in states[a.pk]["stars"]] == ["dave", "carol"]

    response = post(carol_client, STAR, {"result_ids": [a.pk, c.pk, d.pk], "starred": False})
    assert response.json()["changed"] == 2
    assert list(Star.objects.filter(user=carol).values_list("request", flat=True)) == [b.pk]
    assert Star.objects.filter(request=a, user=dave).exists()  # someone else's star stays
    states = {row["result_id"]: row for row in response.json()["results"]}
    assert states[a.pk]["starred"] is False and states[a.pk]["stars"][0]["user"] == "dave"


def test_bulk_star_is_always_the_session_users(rows, carol_client, carol, dave):
    body = {"result_ids": [rows[0].pk], "starred": True, "user": dave.pk, "starred_by": "dave"}
    assert post(carol_client, STAR, body).status_code == 200
    assert list(Star.objects.values_list("user__username", flat=True)) == ["carol"]


def test_bulk_tag_writes_the_reviewers_judgments_and_derives_the_metadata(
    rows, carol_client, carol, dave
):
    a, b, c, _ = rows
    judgments.judgment_update(request=a, reviewer=dave, changes={"quality": 40, "tags": ["x"]})
    judgments.judgment_update(request=b, reviewer=carol, changes={"tags": ["Senior"]})
    response = post(carol_client, TAG, {"result_ids": [a.pk, b.pk, c.pk], "tag": " senior "})
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] == 2  # b's judgment had it already (case aside)
    assert Tag.objects.filter(name__iexact="senior").count() == 1
    for row in (a, b, c):
        mine = Judgment.objects.get(request=row, reviewer=carol)
        assert [t.name for t in mine.tags.all()] == ["Senior"]
    assert [t.name for t in Judgment.objects.get(request=a, reviewer=dave).tags.all()] == ["x"]
    assert sorted(Annotation.objects.get(request=a).tags.values_list("name", flat=True)) == [
        "Senior",
        "x",
    ]
    assert Annotation.objects.get(request=a).quality == 40  # dave's score, kept
    edits = JudgmentEdit.objects.filter(editor=carol, changes__tags__added="Senior")
    assert edits.count() == 2
    states = {row["result_id"]: row for row in body["results"]}
    assert sorted(states[a.pk]["tags"]) == ["Senior", "x"] and states[a.pk]["quality"] == 40
    assert states[c.pk]["tags"] == ["Senior"]


def test_unknown_ids_are_named_and_nothing_changes(rows, carol_client):
    body = {"result_ids": [rows[0].pk, 999_999, 888_888], "starred": True}
    response = post(carol_client, STAR, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "result_ids" and "999999" in error["message"]
    assert "888888" in error["message"]
    assert not Star.objects.exists()
    response = post(carol_client, TAG, {"result_ids": [rows[0].pk, 999_999], "tag": "x"})
    assert response.status_code == 400 and "999999" in response.json()["error"]["message"]
    assert not Judgment.objects.exists() and not Tag.objects.exists()


def test_many_unknown_ids_are_counted_not_all_echoed(rows, carol_client):
    ids = list(range(10_000_000, 10_000_400))
    response = post(carol_client, STAR, {"result_ids": ids, "starred": True})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "and 390 more" in message and len(message) < 300


@pytest.mark.parametrize(
    "url, body, param",
    [
        (STAR, {"result_ids": list(range(1, BULK_MAX + 2)), "starred": True}, "result_ids"),
        (STAR, {"result_ids": [], "starred": True}, "result_ids"),
        (STAR, {"result_ids": "1,2", "starred": True}, "result_ids"),
        (STAR, {"result_ids": ["x"], "starred": True}, "result_ids"),
        (STAR, {"result_ids": [2**63], "starred": True}, "result_ids"),
        (STAR, {"result_ids": [0], "starred": True}, "result_ids"),
        (STAR, {"result_ids": [{"a": 1}], "starred": True}, "result_ids"),
        (STAR, {"result_ids": [1]}, "starred"),
        (STAR, {"result_ids": [1], "starred": "maybe"}, "starred"),
        (TAG, {"result_ids": [1], "tag": ""}, "tag"),
        (TAG, {"result_ids": [1], "tag": "   "}, "tag"),
        (TAG, {"result_ids": [1], "tag": "x" * 51}, "tag"),
        (TAG, {"result_ids": [1], "tag": 5}, "tag"),
        (TAG, {"result_ids": [1], "tag": ["a"]}, "tag"),
        (TAG, {"result_ids": [1]}, "tag"),
        (TAG, {"result_ids": list(range(1, BULK_MAX + 2)), "tag": "x"}, "result_ids"),
    ],
)
def test_hostile_bodies_get_a_clear_400(rows, carol_client, url, body, param):
    response = post(carol_client, url, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].startswith(param) and error["message"]
    assert len(response.content) < 2000
    assert not Star.objects.exists() and not Judgment.objects.exists()


def test_not_json_and_not_post(rows, carol_client):
    response = carol_client.post(STAR, "{not json", "application/json")
    assert response.status_code == 400 and "error" in response.json()
    assert carol_client.get(STAR).status_code == 405
    assert carol_client.get(TAG).status_code == 405


def test_a_full_judgment_refuses_another_tag(rows, carol_client, carol):
    a, b, *_ = rows
    names = [f"t{i}" for i in range(Annotation.MAX_TAGS)]
    judgments.judgment_update(request=a, reviewer=carol, changes={"tags": names})
    response = post(carol_client, TAG, {"result_ids": [a.pk, b.pk], "tag": "one-more"})
    assert response.status_code == 400
    assert str(a.pk) in response.json()["error"]["message"]
    assert not Judgment.objects.filter(request=b).exists()  # nothing changed
    # A tag it already has is fine: nothing to add there.
    response = post(carol_client, TAG, {"result_ids": [a.pk, b.pk], "tag": "T3"})
    assert response.status_code == 200 and response.json()["changed"] == 1


def test_csrf_is_enforced(rows, carol):
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    for url, body in [
        (STAR, {"result_ids": [rows[0].pk], "starred": True}),
        (TAG, {"result_ids": [rows[0].pk], "tag": "x"}),
    ]:
        response = post(client, url, body)
        assert response.status_code == 403
        assert "CSRF" in response.json()["error"]["message"]
    assert not Star.objects.exists() and not Judgment.objects.exists()


def test_non_staff_and_anonymous_are_refused(rows, client, django_user_model):
    body = {"result_ids": [rows[0].pk], "starred": True}
    response = post(client, STAR, body)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_authenticated"
    client.force_login(django_user_model.objects.create_user("mallory", password="pw"))
    assert post(client, STAR, body).status_code == 403
    assert post(client, TAG, {"result_ids": [rows[0].pk], "tag": "x"}).status_code == 403
    assert not Star.objects.exists() and not Judgment.objects.exists()


def test_the_table_renders_the_bulk_bar_and_row_boxes(rows, carol_client):
    html = carol_client.get("/results/").content.decode()
    assert 'id="bulk-bar" hidden' in html
    assert 'data-star-url="/api/results/bulk-star"' in html
    assert 'data-tag-url="/api/results/bulk-tag"' in html
    assert html.count('class="select-row"') == len(rows)
    assert 'id="select-page"' in html
