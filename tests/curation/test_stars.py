"""Gold stars: one per reviewer per result, always the session's user."""

import pytest
from django.test import Client

from curation.models import Star
from tests.factories import make_batch


@pytest.fixture
def result(owner):
    return make_batch(owner).requests.order_by("line").first()


def star(client, result, **extra):
    return client.post(
        "/api/gold-star", {"result_id": result.pk, **extra}, content_type="application/json"
    )


def test_a_star_records_the_logged_in_reviewer_and_time(carol_client, carol, result):
    response = star(carol_client, result)
    assert response.status_code == 200
    body = response.json()
    assert body["starred"] is True
    assert [s["user"] for s in body["stars"]] == ["carol"]
    saved = Star.objects.get()
    assert (saved.request, saved.user) == (result, carol)
    assert saved.created_at is not None


def test_attribution_cannot_be_forged(carol_client, carol, dave, result):
    star(carol_client, result, starred_by="dave", user=dave.pk, user_id=dave.pk)
    assert list(Star.objects.values_list("user__username", flat=True)) == ["carol"]


def test_several_reviewers_star_the_same_result_and_every_page_shows_them(
    carol_client, dave, result
):
    star(carol_client, result)
    other = Client()
    other.force_login(dave)
    body = star(other, result).json()
    assert [s["user"] for s in body["stars"]] == ["carol", "dave"]
    for page in ("/results/", f"/results/{result.pk}/"):
        html = carol_client.get(page).content.decode()
        assert ">carol</span>" in html and ">dave</span>" in html, page


def test_starring_is_idempotent_and_unstarring_removes_only_mine(carol_client, dave, result):
    star(carol_client, result)
    star(carol_client, result)
    Star.objects.create(request=result, user=dave)
    assert Star.objects.count() == 2
    body = star(carol_client, result, starred=False).json()
    assert body["starred"] is False
    assert [s["user"] for s in body["stars"]] == ["dave"]


def test_csrf_is_enforced(carol, result):
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    assert star(client, result).status_code == 403
    client.get("/results/")  # sets the CSRF cookie, as a browser would
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/gold-star",
        {"result_id": result.pk},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert Star.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [{}, {"result_id": "x"}, {"result_id": 1, "starred": "maybe"}, {"result_id": 999_999}],
)
def test_bad_payloads_get_clear_errors(carol_client, result, payload):
    response = carol_client.post("/api/gold-star", payload, content_type="application/json")
    assert response.status_code in (400, 404)
    assert response.json()["error"]["message"]
    assert not Star.objects.exists()
