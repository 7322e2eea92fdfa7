"""Only active staff reach the viewer; API keys do not open it."""

import pytest
from django.test import Client

from batches.services import api_key_create

PAGES = ["/", "/results/", "/compare/", "/admin/"]
APIS = [
    ("post", "/api/gold-star", {"result_id": 1}),
    ("post", "/api/results/1/annotation", {"quality": 5}),
    ("post", "/api/compare/winner", {"winner": 1, "candidates": [1, 2]}),
    ("get", "/api/tags", None),
    ("get", "/api/batches/progress", None),
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, path, db):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("path", PAGES)
def test_non_staff_and_inactive_users_are_sent_to_the_login_page(path, django_user_model):
    reviewer = django_user_model.objects.create_user("eve", password="pw")
    former = django_user_model.objects.create_user("mallory", is_staff=True, is_active=False)
    for user in (reviewer, former):
        client = Client()
        client.force_login(user)
        response = client.get(path)
        assert response.status_code == 302, user
        assert "/admin/login/" in response["Location"]


def test_the_login_page_refuses_non_staff(client, django_user_model):
    django_user_model.objects.create_user("eve", password="eve-pw")
    response = client.post("/admin/login/?next=/", {"username": "eve", "password": "eve-pw"})
    assert response.status_code == 200
    assert "staff account" in response.content.decode()
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", ["/", "/results/", "/compare/"])
def test_staff_reach_every_page(carol_client, path):
    assert carol_client.get(path).status_code == 200


@pytest.mark.parametrize(("method", "path", "data"), APIS)
def test_viewer_apis_refuse_anonymous_and_api_key_callers(client, owner, method, path, data):
    raw_key = api_key_create(owner=owner)[1]
    for headers in ({}, {"Authorization": f"Bearer {raw_key}"}):
        response = getattr(client, method)(
            path, data, content_type="application/json", headers=headers
        )
        assert response.status_code == 403
        assert response.json()["error"]["message"]


def test_api_keys_do_not_open_viewer_pages(client, owner):
    raw_key = api_key_create(owner=owner)[1]
    response = client.get("/results/", headers={"Authorization": f"Bearer {raw_key}"})
    assert response.status_code == 302
