"""Smoke test: every admin changelist and change page renders for a superuser."""

import pytest
from django.contrib import admin
from django.urls import reverse

from batches.services import api_key_create
from tests.factories import chat_requests, ingest


@pytest.fixture
def populated(alice):
    api_key_create(owner=alice, name="aris")
    ingest(alice, chat_requests(2))


def test_every_changelist_and_change_page_renders(admin_client, populated):
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert admin_client.get(change).status_code == 200, change


def test_the_viewer_sends_anonymous_users_to_the_login_page(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
