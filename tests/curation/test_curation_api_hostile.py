"""Hostile input to every curation API endpoint: a clear error in the envelope,
never a 500, never an unbounded echo, and nothing stored changes."""

import pytest
from rest_framework.test import APIClient

from curation import queues
from curation.models import ItemReview, Judgment, JudgmentEdit, QueueItem, Star
from curation.tokens import token_create
from exports.models import Export
from tests.factories import make_batch

pytestmark = pytest.mark.django_db

API = "/api/v1"
HUGE = "x" * 100_000
# An error stays a few lines long, whatever was sent.
MAX_ERROR_BYTES = 2_000


@pytest.fixture
def agent(django_user_model):
    return django_user_model.objects.create_user("agent-1")


@pytest.fixture
def http(agent) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=agent)[1]}")
    return client


@pytest.fixture
def queue(carol, owner):
    batch = make_batch(owner, count=3)
    return queues.queue_create(
        spec=queues.QueueSpec(
            name="screening",
            filter_query=f"batch={batch.public_id}",
            fields=("star", "quality", "category", "tags", "notes"),
        ),
        created_by=carol,
    )


@pytest.fixture
def claimed(queue, agent) -> int:
    return queues.claim_next(queue=queue, reviewer=agent).item_id


def stored() -> tuple:
    """Everything the API could write, for before/after comparisons."""
    return (
        list(ItemReview.objects.order_by("pk").values_list("pk", "state", "reserved_until")),
        list(Judgment.objects.values_list("pk", "quality", "category", "notes", "updated_at")),
        JudgmentEdit.objects.count(),
        Star.objects.count(),
        Export.objects.count(),
        list(QueueItem.objects.order_by("pk").values_list("open_slots", "done_count")),
    )


def assert_error(response, status: int, *, param: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert len(response.content) < MAX_ERROR_BYTES, len(response.content)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


BAD_IDS = ["abc", "-1", "0", str(2**63), str(2**64), "1e3", "٣", "1.0", "%20"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_that_name_nothing_are_404_in_the_envelope(http, queue, claimed, bad):
    before = stored()
    item = claimed
    for method, url in [
        ("get", f"{API}/queues/{bad}"),
        ("post", f"{API}/queues/{bad}/claim"),
        ("get", f"{API}/queues/{queue.pk}/items/{bad}"),
        ("get", f"{API}/queues/{bad}/items/{item}"),
        ("post", f"{API}/queues/{queue.pk}/items/{bad}/submit"),
        ("post", f"{API}/queues/{queue.pk}/items/{bad}/skip"),
        ("get", f"{API}/results/{bad}"),
        ("get", f"{API}/exports/{bad}"),
        ("get", f"{API}/exports/{bad}/download"),
    ]:
        response = getattr(http, method)(url, {"quality": 1} if "submit" in url else None)
        assert_error(response, 404)
    assert stored() == before


def test_an_item_of_another_queue_is_not_found(http, queue, claimed, carol, owner):
    other = queues.queue_create(
        spec=queues.QueueSpec(
            name="other",
            filter_query=f"batch={make_batch(owner, count=1, prefix='z').public_id}",
            fields=("quality",),
        ),
        created_by=carol,
    )
    before = stored()
    response = http.post(
        f"{API}/queues/{other.pk}/items/{claimed}/submit", {"quality": 5}, format="json"
    )
    assert_error(response, 404, param="item")
    assert stored() == before


@pytest.mark.parametrize(
    "body, param",
    [
        ({"quality": 101}, "quality"),
        ({"quality": -1}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"quality": True}, "quality"),
        ({"quality": 1.5}, "quality"),
        ({"quality": [80]}, "quality"),
        ({"category": "bogus"}, "category"),
        ({"category": HUGE}, "category"),
        ({"category": 5}, "category"),
        ({"tags": "not-a-list"}, "tags"),
        ({"tags": [5]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"notes": {"a": 1}}, "notes"),
        ({"star": "yes"}, "star"),
        ({"star": 1}, "star"),
        ({"outcome": "tie"}, "outcome"),
        ({"winner": "a"}, "outcome"),
        ({"qualty": 80}, "qualty"),
        ({"reviewer": "carol", "quality": 80}, "reviewer"),
        ({HUGE: 1}, None),
        ({}, "fields"),
    ],
)
def test_a_bad_submission_is_400_and_changes_nothing(http, queue, claimed, body, param):
    before = stored()
    response = http.post(f"{API}/queues/{queue.pk}/items/{claimed}/submit", body, format="json")
    error = assert_error(response, 400, param=param)
    if param is None:
        assert len(error["param"]) <= 200
    assert stored() == before


@pytest.mark.parametrize(
    "raw, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"quality"', "application/json", 400),
        (b"null", "application/json", 400),
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400),
        (b'{"quality": ' + b"[" * 200 + b"]" * 200 + b"}", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"quality=80", "application/x-www-form-urlencoded", 415),
        (b"--x\r\n", "multipart/form-data; boundary=x", 415),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    http, queue, claimed, raw, content_type, status
):
    before = stored()
    response = http.generic(
        "POST", f"{API}/queues/{queue.pk}/items/{claimed}/submit", raw, content_type
    )
    assert_error(response, status)
    assert stored() == before


def test_queue_rules_are_400s_that_change_nothing(http, carol, owner, agent):
    batch = make_batch(owner, count=2, prefix="p")
    narrow = queues.queue_create(
        spec=queues.QueueSpec(
            name="quality only", filter_query=f"batch={batch.public_id}", fields=("quality",)
        ),
        created_by=carol,
    )
    item = queues.claim_next(queue=narrow, reviewer=agent).item_id
    before = stored()
    response = http.post(
        f"{API}/queues/{narrow.pk}/items/{item}/submit", {"category": "good"}, format="json"
    )
    assert_error(response, 400, param="category")
    response = http.post(
        f"{API}/queues/{narrow.pk}/items/{item}/submit",
        {"quality": 5, "outcome": "tie"},
        format="json",
    )
    assert_error(response, 400, param="outcome")
    assert stored() == before


@pytest.mark.parametrize(
    "params, param",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"before": "-1"}, "before"),
        ({"before": str(2**63)}, "before"),
        ({"after": "1.5"}, "after"),
        ({"quality_min": "abc"}, "quality"),
        ({"batch": "batch_nope"}, "batch"),
        ({"status": "bogus"}, "status"),
        ({"starred": "maybe"}, "starred"),
        ({"finished_after": "yesterday"}, "finished"),
        ({"q": "x" * 1_001}, "q"),
        ({"batch": HUGE}, "batch"),
        ({"bacth": "batch_1"}, "bacth"),
        ({"user": "carol"}, "user"),
    ],
)
def test_bad_result_filters_are_400_naming_the_field(http, queue, params, param):
    before = stored()
    assert_error(http.get(f"{API}/results", params), 400, param=param)
    assert stored() == before


@pytest.mark.parametrize(
    "body, param",
    [
        ({"format": "bogus"}, None),
        ({"format": "csv", "limit": 0}, None),
        ({"format": "csv", "limit": HUGE}, None),
        ({"format": "csv", "starred": {"nested": 1}}, None),
        ({"format": "csv", "created_by": "carol"}, "created_by"),
        ({"format": "csv", "user": "carol"}, "user"),
        ({HUGE: "x"}, None),
    ],
)
def test_bad_export_requests_are_400_and_write_nothing(http, queue, body, param):
    before = stored()
    error = assert_error(http.post(f"{API}/exports", body, format="json"), 400, param=param)
    assert HUGE not in error["message"]
    assert stored() == before


def test_export_bodies_that_are_not_objects_are_400(http, queue):
    for raw in (b"[]", b'"csv"', b"{", b"[" * 3_000):
        assert_error(http.generic("POST", f"{API}/exports", raw, "application/json"), 400)
    assert not Export.objects.exists()


def test_get_changes_nothing_and_wrong_methods_are_405(http, queue, claimed):
    before = stored()
    for url in [
        f"{API}/queues",
        f"{API}/queues/{queue.pk}",
        f"{API}/queues/{queue.pk}/items/{claimed}",
        f"{API}/results",
    ]:
        assert http.get(url).status_code == 200, url
    assert stored() == before
    for method, url in [
        ("get", f"{API}/queues/{queue.pk}/claim"),
        ("get", f"{API}/queues/{queue.pk}/items/{claimed}/submit"),
        ("delete", f"{API}/queues/{queue.pk}"),
        ("put", f"{API}/results"),
        ("get", f"{API}/exports"),
    ]:
        assert_error(getattr(http, method)(url), 405)
    assert stored() == before


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "rt-bs-" + "a" * 100_000,
        "Bearer rt-bs-é",
        "Bearer",
        "Bearer a b c",
        "Basic dXNlcjpwYXNz",
        "Bearer sk-bs-" + "k" * 43,
        "Token rt-bs-abc",
    ],
)
def test_hostile_authorization_headers_are_401(queue, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    before = stored()
    error = assert_error(client.post(f"{API}/queues/{queue.pk}/claim"), 401)
    assert error["code"] in ("not_authenticated", "invalid_token")
    assert stored() == before
