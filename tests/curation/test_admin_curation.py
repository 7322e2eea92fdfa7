"""The admin for queues, judgments and reviewer tokens: queues are made through
the queue service (a refused spec is a form error), tokens are shown once."""

import re

import pytest
from django.urls import reverse

from core.bearer import secret_hash
from curation.models import QueueItem, ReviewerToken, ReviewQueue
from tests.factories import make_batch

pytestmark = pytest.mark.django_db


def test_a_queue_made_in_the_admin_gets_its_items(admin_client, admin_user, owner, carol):
    batch = make_batch(owner, count=3)
    response = admin_client.post(
        reverse("admin:curation_reviewqueue_add"),
        {
            "name": "week 2",
            "kind": "results",
            "filter_query": f"batch={batch.public_id}",
            "compare_batch_ids": "",
            "reviewers": [carol.pk, admin_user.pk],
            "reviewers_per_item": 2,
            "instructions": "Score **fit**.",
            "fields": ["quality", "category"],
            "blind": "on",
            "reservation_seconds": 600,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    queue = ReviewQueue.objects.get(name="week 2")
    assert queue.item_count == 3 == QueueItem.objects.filter(queue=queue).count()
    assert set(queue.reviewers.all()) == {carol, admin_user}
    assert queue.fields == ["quality", "category"]
    assert queue.created_by == admin_user


def test_a_refused_queue_is_a_form_error_and_writes_nothing(admin_client, owner):
    make_batch(owner, count=1)
    response = admin_client.post(
        reverse("admin:curation_reviewqueue_add"),
        {
            "name": "bad",
            "kind": "results",
            "filter_query": "quality_min=abc",
            "reviewers_per_item": 1,
            "fields": [],
            "reservation_seconds": 600,
        },
    )
    assert response.status_code == 200
    assert "Choose at least one field" in response.content.decode()
    assert not ReviewQueue.objects.exists()


def test_a_token_added_in_the_admin_is_shown_once_and_stored_hashed(admin_client, carol):
    response = admin_client.post(
        reverse("admin:curation_reviewertoken_add"), {"user": carol.pk, "name": "agent"}
    )
    assert response.status_code == 200
    raw = re.search(r'id="reviewer-token"[^>]*>(rt-bs-[^<]+)<', response.content.decode())[1]
    token = ReviewerToken.objects.get()
    assert token.user == carol
    assert token.key_hash == secret_hash(raw) and raw not in token.key_hash
    page = admin_client.get(reverse("admin:curation_reviewertoken_change", args=[token.pk]))
    assert raw not in page.content.decode()

    admin_client.post(
        reverse("admin:curation_reviewertoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
