"""The admin: every changelist and change page renders, and curated and machine
rows cannot be deleted from it."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task
from django_q.tasks import async_task

from batches.models import (
    Batch,
    Chunk,
    File,
    Heartbeat,
    IdempotencyKey,
    Request,
    WebhookDelivery,
)
from batches.services import api_key_create
from curation import queues, tokens
from curation import services as curation
from curation.models import Annotation, Preference, Star, Tag
from exports import services as exports
from exports.models import Export
from tests.factories import chat_requests, ingest, make_batch


@pytest.fixture
def populated(alice, carol):
    """A row for every registered model (the smoke test fails on a model without one)."""
    Group.objects.create(name="reviewers")
    key = api_key_create(owner=alice, name="aris")[0]
    batch = ingest(alice, chat_requests(2))
    first = make_batch(alice, model="tiny-chat", count=1, prefix="c")
    second = make_batch(alice, model="other-model", count=1, prefix="c")
    a, b = first.requests.get(), second.requests.get()
    curation.winner_pick(winner_id=a.pk, candidate_ids=[a.pk, b.pk], user=carol)
    curation.annotation_update(
        request=a, user=carol, changes={"quality": 90, "tags": ["senior"], "notes": "Good."}
    )
    exports.export_create(params={"format": "icl"}, user=carol, origin="viewer")
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="smoke", filter_query=f"batch={first.public_id}", fields=("quality",)
        ),
        created_by=carol,
    )
    queues.claim_next(queue=queue, reviewer=carol)
    tokens.token_create(user=carol, name="agent")
    WebhookDelivery.objects.create(
        batch=batch,
        api_key=key,
        event="batch.completed",
        url="https://hook:s3cret@example.com/hook?token=t0ken",
        attempts=2,
        last_error="ConnectError: [Errno 111] Connection refused",
    )
    Heartbeat.objects.create(name="engine:host:1", beat_at=timezone.now(), details={"model": "m"})
    IdempotencyKey.objects.create(
        owner=alice, key="k-1", endpoint="POST /v1/batches", body_hash="0" * 64
    )
    now = timezone.now()
    for success in (True, False):
        Task.objects.create(
            id=f"task-{success}",
            name=f"task {success}",
            func="math.floor",
            started=now,
            stopped=now,
            success=success,
        )
    Schedule.objects.get_or_create(name="smoke", func="math.floor")
    async_task("math.floor", 1.5)  # a queued message (the ORM broker's OrmQ row)


def test_every_changelist_and_change_page_renders(admin_client, populated):
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        obj = model.objects.first()
        assert obj is not None, f"give {meta.label} a row in the populated fixture"
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        assert admin_client.get(change).status_code == 200, change


# Curated rows are kept forever; batches, results and files cascade into them;
# machine rows are the server's own.
UNDELETABLE = [
    Star,
    Annotation,
    Preference,
    Tag,
    Export,
    Batch,
    Request,
    File,
    Chunk,
    WebhookDelivery,
    Heartbeat,
    IdempotencyKey,
]


@pytest.mark.parametrize("model", UNDELETABLE, ids=lambda m: m._meta.label)
def test_curated_and_machine_rows_cannot_be_deleted_from_the_admin(admin_client, populated, model):
    meta = model._meta
    obj = model.objects.first()
    count = model.objects.count()
    delete = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[obj.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403

    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    assert 'value="delete_selected"' not in admin_client.get(changelist).content.decode()
    admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    )
    assert model.objects.count() == count
    change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    assert delete not in admin_client.get(change).content.decode()  # no delete link


def test_deleting_a_user_who_owns_batches_or_curated_rows_is_refused(admin_client, populated):
    """A user's deletion would cascade into their batches, results and stars."""
    for username in ("alice", "carol"):
        user = get_user_model().objects.get(username=username)
        delete = reverse("admin:auth_user_delete", args=[user.pk])
        assert "permission to delete" in admin_client.get(delete).content.decode()
        admin_client.post(delete, {"post": "yes"})  # refused: a 403, or the page again
    assert get_user_model().objects.filter(username__in=["alice", "carol"]).count() == 2
    assert Star.objects.exists() and Preference.objects.exists()


def test_webhook_deliveries_show_their_last_error_but_never_the_urls_secrets(
    admin_client, populated
):
    delivery = WebhookDelivery.objects.get()
    for url in (
        "/admin/batches/webhookdelivery/",
        f"/admin/batches/webhookdelivery/{delivery.pk}/change/",
    ):
        html = admin_client.get(url).content.decode()
        assert "Connection refused" in html and "https://example.com/hook" in html
        assert "s3cret" not in html and "t0ken" not in html


def test_the_viewer_sends_anonymous_users_to_the_login_page(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_nothing_is_left_queued_by_the_smoke_fixture(populated):
    assert OrmQ.objects.count() == 1  # the one message made for the queue's admin page
