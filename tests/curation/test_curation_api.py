"""The curation API (/api/v1/ on the viewer's port): reviewer tokens, queues, results,
exports and the schema; every happy path checked in the database."""

import json
import threading

import httpx
import pytest
from django.db import connection
from django.db.models import F
from django.urls import URLPattern
from rest_framework.test import APIClient

from batches.services import api_key_create
from batchserver.urls import curation_api as curation_api_urls
from core.exceptions import ApplicationError
from curation import queues
from curation.models import (
    Annotation,
    Comparison,
    ItemReview,
    Judgment,
    JudgmentEdit,
    Preference,
    QueueItem,
    ReviewerToken,
    Star,
)
from curation.tokens import token_create, tokens_revoke
from exports.models import Export
from tests.factories import make_batch

pytestmark = pytest.mark.django_db

API = "/api/v1"
ALL_FIELDS = ("star", "quality", "category", "tags", "notes")


@pytest.fixture
def agent(django_user_model):
    # A plain account: not staff, no password. The token is its only way in.
    return django_user_model.objects.create_user("agent-1")


@pytest.fixture
def agent_token(agent) -> str:
    return token_create(user=agent, name="screening agent")[1]


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def agent_client(agent_token) -> APIClient:
    return client_for(agent_token)


@pytest.fixture
def batch(owner):
    return make_batch(owner, count=4)


def make_queue(creator, batch, **spec):
    spec = {
        "name": "screening",
        "filter_query": f"batch={batch.public_id}",
        "fields": ALL_FIELDS,
        "instructions": "# Judge\nScore **quality** 0-100.",
        **spec,
    }
    return queues.queue_create(spec=queues.QueueSpec(**spec), created_by=creator)


@pytest.fixture
def queue(carol, batch):
    return make_queue(carol, batch)


# --- Queues ----------------------------------------------------------------------


def test_it_lists_the_queues_the_token_user_may_work_with_progress(
    agent, agent_client, carol, dave, batch, queue
):
    make_queue(carol, batch, name="dave only", reviewers=(dave,))
    mine = make_queue(carol, batch, name="agents", reviewers=(agent, dave))
    queues.claim_next(queue=queue, reviewer=agent)
    response = agent_client.get(f"{API}/queues")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["data"]}
    assert set(rows) == {"screening", "agents"}
    row = rows["screening"]
    assert row["id"] == queue.pk
    assert row["kind"] == "results"
    assert row["instructions"].startswith("# Judge")
    assert row["fields"] == list(ALL_FIELDS)
    assert row["reviewers_per_item"] == 1
    assert row["item_count"] == 4
    assert row["progress"] == {"items": 4, "complete": 0, "done": 0, "skipped": 0, "pending": 1}
    assert row["mine"] == {"done": 0, "skipped": 0, "pending": 1}

    one = agent_client.get(f"{API}/queues/{mine.pk}")
    assert one.status_code == 200
    assert one.json()["name"] == "agents"


def test_claim_gives_the_item_in_full_and_submit_records_it_as_the_token_user(
    agent, agent_client, queue
):
    claimed = agent_client.post(f"{API}/queues/{queue.pk}/claim")
    assert claimed.status_code == 200
    item = claimed.json()["item"]
    review = ItemReview.objects.get(reviewer=agent)
    assert item["id"] == review.item_id
    assert item["state"] == "pending" and item["reserved_until"]
    assert item["kind"] == "results" and item["sides"] is None
    assert item["instructions"] == queue.instructions
    assert item["fields"] == list(ALL_FIELDS)
    result = item["result"]
    request = QueueItem.objects.get(pk=review.item_id).request
    assert result["id"] == request.pk
    assert result["messages"] == request.transcript
    assert result["response"] == request.response_text
    assert result["parameters"] == {"temperature": 0.2}
    assert result["finish_reason"] == "stop" and result["cut_off"] is False
    assert result["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "cached_tokens": None}
    assert item["judgment"] is None and item["starred"] is False and item["verdict"] is None

    body = {
        "star": True,
        "quality": 85,
        "category": "good",
        "tags": ["concise", "rust"],
        "notes": "Clear.",
    }
    submitted = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit", body, format="json"
    )
    assert submitted.status_code == 200, submitted.json()
    data = submitted.json()
    assert data["review"] == {
        "item": item["id"],
        "reviewer": "agent-1",
        "state": "done",
        "finished_at": data["review"]["finished_at"],
    }
    assert data["item"]["state"] == "done"
    assert data["item"]["starred"] is True
    assert data["item"]["judgment"]["quality"] == 85
    assert data["item"]["judgment"]["tags"] == ["concise", "rust"]

    judgment = Judgment.objects.get(request=request)
    assert judgment.reviewer == agent
    assert (judgment.quality, judgment.category, judgment.notes) == (85, "good", "Clear.")
    assert JudgmentEdit.objects.get(judgment=judgment).editor == agent
    assert Star.objects.get(request=request).user == agent
    annotation = Annotation.objects.get(pk=request.pk)
    assert (annotation.quality, annotation.edited_by) == (85, agent)
    review.refresh_from_db()
    assert review.state == ItemReview.State.DONE and review.reserved_until is None

    # Going back shows the judgment; submitting again edits it, counted once.
    back = agent_client.get(f"{API}/queues/{queue.pk}/items/{item['id']}")
    assert back.json()["judgment"]["notes"] == "Clear."
    again = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit", {"quality": 60}, format="json"
    )
    assert again.status_code == 200
    assert Judgment.objects.get(request=request).quality == 60
    assert QueueItem.objects.get(pk=item["id"]).done_count == 1

    nxt = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    assert nxt["id"] != item["id"]


def test_claim_says_when_nothing_is_left(agent, agent_client, carol, owner):
    queue = make_queue(carol, make_batch(owner, count=1, prefix="one"), name="one")
    item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit", {"quality": 1}, format="json"
    )
    response = agent_client.post(f"{API}/queues/{queue.pk}/claim")
    assert response.status_code == 200
    assert response.json() == {"item": None, "message": "Nothing left for you in this queue."}


def test_skip_passes_the_item_on_and_a_done_item_cannot_be_skipped(
    agent, agent_client, dave, queue
):
    item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    skipped = agent_client.post(f"{API}/queues/{queue.pk}/items/{item['id']}/skip")
    assert skipped.status_code == 200
    assert skipped.json()["review"]["state"] == "skipped"
    assert ItemReview.objects.get(reviewer=agent).state == ItemReview.State.SKIPPED
    assert queues.claim_next(queue=queue, reviewer=dave).item_id == item["id"]

    other = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    assert other["id"] != item["id"]
    agent_client.post(
        f"{API}/queues/{queue.pk}/items/{other['id']}/submit", {"quality": 5}, format="json"
    )
    refused = agent_client.post(f"{API}/queues/{queue.pk}/items/{other['id']}/skip")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "already_done"
    assert ItemReview.objects.get(reviewer=agent, item_id=other["id"]).state == "done"


def test_a_pairwise_blind_queue_hides_model_and_batch_until_the_verdict(
    agent, agent_client, carol, owner
):
    first = make_batch(owner, model="model-a", count=2, prefix="q")
    second = make_batch(owner, model="model-b", count=2, prefix="q")
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="a vs b",
            kind="pairwise",
            compare_batches=(first.public_id, second.public_id),
            fields=("notes",),
            blind=True,
        ),
        created_by=carol,
    )
    item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    assert item["kind"] == "pairwise" and item["result"] is None
    assert sorted(side["side"] for side in item["sides"]) == ["a", "b"]
    for side in item["sides"]:
        assert side["result"]["model"] is None
        assert side["result"]["batch"] is None
        assert side["result"]["id"] is None
        assert side["result"]["response"].endswith(f"says hire {item['position'] - 1}")
    shown = json.dumps(item)
    assert first.public_id not in shown and second.public_id not in shown

    # "b" is always the item's other response, whatever the display order.
    submitted = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit",
        {"outcome": "winner", "winner": "b", "notes": "b is kinder"},
        format="json",
    )
    assert submitted.status_code == 200, submitted.json()
    queue_item = QueueItem.objects.get(pk=item["id"])
    comparison = Comparison.objects.get(user=agent)
    assert comparison.winner_id == queue_item.other_id
    assert comparison.blind is True
    assert Preference.objects.get(user=agent).chosen_id == queue_item.other_id
    after = submitted.json()["item"]
    assert after["verdict"]["outcome"] == "winner" and after["verdict"]["winner"] == "b"
    models = {side["side"]: side["result"]["model"] for side in after["sides"]}
    assert models == {"a": "model-a", "b": "model-b"}

    second_item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    tie = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{second_item['id']}/submit",
        {"outcome": "both_bad"},
        format="json",
    )
    assert tie.status_code == 200
    assert tie.json()["item"]["verdict"]["winner"] is None
    assert Comparison.objects.filter(user=agent, outcome="both_bad").count() == 1

    missing = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{second_item['id']}/submit",
        {"outcome": "winner"},
        format="json",
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "winner"


# --- Attribution -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["reviewer", "user", "starred_by"])
def test_a_body_cannot_name_who_acts(agent_client, carol, queue, key):
    item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    response = agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit",
        {"quality": 90, key: "carol"},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == key and key in error["message"]
    assert not Judgment.objects.exists()
    assert ItemReview.objects.get().state == ItemReview.State.PENDING


def test_one_token_never_changes_another_reviewers_judgment(
    agent, agent_client, dave, carol, batch, django_user_model
):
    queue = make_queue(carol, batch, name="overlap", reviewers_per_item=2)
    other = django_user_model.objects.create_user("agent-2")
    other_client = client_for(token_create(user=other)[1])
    item = agent_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    same = other_client.post(f"{API}/queues/{queue.pk}/claim").json()["item"]
    assert same["id"] == item["id"]  # the item needs both
    agent_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit", {"quality": 10}, format="json"
    )
    other_client.post(
        f"{API}/queues/{queue.pk}/items/{item['id']}/submit", {"quality": 90}, format="json"
    )
    assert Judgment.objects.get(reviewer=agent).quality == 10
    assert Judgment.objects.get(reviewer=other).quality == 90
    assert Annotation.objects.get().quality == 50
    # Each sees only their own judgment on the item.
    assert (
        agent_client.get(f"{API}/queues/{queue.pk}/items/{item['id']}").json()["judgment"][
            "quality"
        ]
        == 10
    )


# --- Authentication --------------------------------------------------------------


def test_without_a_token_it_is_401_with_a_message_that_says_what_to_send(client, queue):
    response = client.get(f"{API}/queues")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert "Authorization: Bearer rt-bs-" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_logged_in_staff_browser_without_a_token_is_401(carol_client, queue):
    for method, url in [
        ("get", f"{API}/queues"),
        ("post", f"{API}/queues/{queue.pk}/claim"),
        ("get", f"{API}/results"),
    ]:
        response = getattr(carol_client, method)(url)
        assert response.status_code == 401, url
    assert not ItemReview.objects.exists()


def test_a_batch_api_key_opens_nothing_here(owner, queue):
    raw_key = api_key_create(owner=owner, name="aris")[1]
    response = client_for(raw_key).get(f"{API}/queues")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert "batch API key" in response.json()["error"]["message"]
    assert raw_key not in response.content.decode()


def test_a_reviewer_token_opens_nothing_on_v1(agent_token, settings):
    settings.ROOT_URLCONF = settings.API_URLCONF
    response = client_for(agent_token).get("/v1/batches")
    assert response.status_code == 401


def test_revoked_unknown_and_inactive_tokens_are_401(agent, agent_token, queue):
    assert client_for(agent_token).get(f"{API}/queues").status_code == 200
    token = ReviewerToken.objects.get(user=agent)
    assert token.last_used_at is not None
    assert tokens_revoke(ReviewerToken.objects.filter(pk=token.pk)) == 1
    response = client_for(agent_token).get(f"{API}/queues")
    assert response.status_code == 401
    assert agent_token not in response.content.decode()

    fresh = token_create(user=agent)[1]
    agent.is_active = False
    agent.save()
    assert client_for(fresh).get(f"{API}/queues").status_code == 401
    assert client_for("rt-bs-" + "x" * 43).get(f"{API}/queues").status_code == 401
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    assert malformed.get(f"{API}/queues").status_code == 401


def test_the_token_is_stored_only_as_a_hash(agent):
    token, raw = token_create(user=agent, name="x")
    assert raw.startswith("rt-bs-") and len(raw) > 40
    assert raw not in (token.key_hash, token.hint) and raw.endswith(token.hint)


def test_a_user_not_assigned_to_the_queue_is_403_and_nothing_changes(
    agent_client, carol, dave, batch
):
    queue = make_queue(carol, batch, name="dave only", reviewers=(dave,))
    item_id = QueueItem.objects.filter(queue=queue).first().pk
    for method, url, body in [
        ("get", f"{API}/queues/{queue.pk}", None),
        ("post", f"{API}/queues/{queue.pk}/claim", None),
        ("get", f"{API}/queues/{queue.pk}/items/{item_id}", None),
        ("post", f"{API}/queues/{queue.pk}/items/{item_id}/submit", {"quality": 5}),
        ("post", f"{API}/queues/{queue.pk}/items/{item_id}/skip", None),
    ]:
        response = getattr(agent_client, method)(url, body, format="json")
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "not_assigned"
    assert not ItemReview.objects.exists() and not Judgment.objects.exists()


def test_the_rate_limit_is_per_token_and_answers_429_in_the_envelope(
    agent_client, agent, queue, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "curation": "3/min",
        },
    }
    for _ in range(3):
        assert agent_client.get(f"{API}/queues").status_code == 200
    response = agent_client.post(f"{API}/queues/{queue.pk}/claim")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert not ItemReview.objects.exists()
    # Another token has its own count.
    other = token_create(user=agent)[1]
    assert client_for(other).get(f"{API}/queues").status_code == 200


# --- Results ---------------------------------------------------------------------


def test_results_are_listed_newest_first_with_filters_and_cursors(
    agent, agent_client, owner, batch
):
    other = make_batch(owner, model="other-model", count=3, prefix="o")
    first = agent_client.get(f"{API}/results", {"batch": batch.public_id, "limit": 3})
    assert first.status_code == 200
    page = first.json()
    ids = list(batch.requests.order_by("-pk").values_list("pk", flat=True))
    assert [row["id"] for row in page["data"]] == ids[:3]
    assert page["newer"] is None and page["older"] == ids[2]
    row = page["data"][0]
    assert row["batch"] == batch.public_id and row["model"] == "tiny-chat"
    assert row["prompt"].startswith("Candidate") and row["response"].startswith("tiny-chat says")
    assert row["finish_reason"] == "stop" and row["cut_off"] is False
    assert row["usage"]["completion_tokens"] == 4 and row["latency_ms"] == 30
    assert row["annotation"] is None and row["stars"] == []

    second = agent_client.get(
        f"{API}/results", {"batch": batch.public_id, "limit": 3, "before": page["older"]}
    ).json()
    assert [r["id"] for r in second["data"]] == ids[3:]
    assert second["older"] is None and second["newer"] == ids[3]
    back = agent_client.get(
        f"{API}/results", {"batch": batch.public_id, "limit": 3, "after": second["newer"]}
    ).json()
    assert [r["id"] for r in back["data"]] == ids[:3]

    everything = agent_client.get(f"{API}/results").json()["data"]
    assert len(everything) == 7
    by_model = agent_client.get(f"{API}/results", {"model": "other-model"}).json()["data"]
    assert {r["batch"] for r in by_model} == {other.public_id}

    result = batch.requests.get(line=1)
    Star.objects.create(request=result, user=agent)
    starred = agent_client.get(f"{API}/results", {"starred": "me"}).json()["data"]
    assert [r["id"] for r in starred] == [result.pk]
    assert starred[0]["stars"] == ["agent-1"]


def test_a_result_in_full_shows_the_callers_own_judgment(agent, agent_client, dave, batch):
    from curation import judgments

    result = batch.requests.get(line=2)
    judgments.judgment_update(request=result, reviewer=dave, changes={"quality": 20})
    response = agent_client.get(f"{API}/results/{result.pk}")
    assert response.status_code == 200
    data = response.json()
    assert data["messages"][0] == {"role": "system", "content": "You evaluate candidates."}
    assert data["response"] == "tiny-chat says hire 1"
    assert data["parameters"] == {"temperature": 0.2}
    assert data["line"] == 2 and data["error"] is None
    assert data["annotation"]["quality"] == 20
    assert data["judgment"] is None  # dave's is not the caller's
    judgments.judgment_update(request=result, reviewer=agent, changes={"category": "good"})
    mine = agent_client.get(f"{API}/results/{result.pk}").json()["judgment"]
    assert mine["reviewer"] == "agent-1" and mine["category"] == "good"


# --- Exports ---------------------------------------------------------------------


def test_an_export_is_made_as_the_token_user_and_downloaded(
    agent, agent_client, carol, batch, tmp_path
):
    for result in batch.requests.all()[:2]:
        Star.objects.create(request=result, user=agent)
    response = agent_client.post(
        f"{API}/exports",
        {"format": "csv", "starred": "me", "batch": batch.public_id},
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    export = Export.objects.get()
    assert export.user == agent and export.rows == 2
    assert data["id"] == export.pk and data["created_by"] == "agent-1"
    assert data["download_url"] == f"{API}/exports/{export.pk}/download"

    assert agent_client.get(f"{API}/exports/{export.pk}").json()["rows"] == 2
    download = agent_client.get(data["download_url"])
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert content.count(b"\n") >= 3  # header and two rows
    assert b"attachment" in download["Content-Disposition"].encode()

    # Another user's export is not found through the API.
    other_export = Export.objects.create(
        format="csv",
        params={},
        user=carol,
        origin="viewer",
        directory="x",
        files=[],
        rows=0,
        skipped=0,
    )
    assert agent_client.get(f"{API}/exports/{other_export.pk}").status_code == 404
    assert agent_client.get(f"{API}/exports/{other_export.pk}/download").status_code == 404


def test_an_export_with_nothing_to_export_or_unknown_options_is_400(agent_client, batch):
    nothing = agent_client.post(f"{API}/exports", {"format": "csv"}, format="json")
    assert nothing.status_code == 400
    assert "Nothing matches" in nothing.json()["error"]["message"]
    typo = agent_client.post(f"{API}/exports", {"format": "csv", "qualty_min": 3}, format="json")
    assert typo.status_code == 400
    assert typo.json()["error"]["param"] == "qualty_min"
    assert not Export.objects.exists()


def test_an_export_can_ask_that_two_reviewers_agree(agent, agent_client, dave, batch):
    from curation import judgments

    agreed, split = batch.requests.order_by("line")[:2]
    for reviewer, scores in ((agent, (85, 90)), (dave, (95, 40))):
        for result, quality in zip((agreed, split), scores, strict=True):
            judgments.judgment_update(
                request=result, reviewer=reviewer, changes={"quality": quality}
            )
    body = {"format": "csv", "starred": "any", "agreed_quality_min": 80, "agreed_reviewers": 2}
    response = agent_client.post(f"{API}/exports", body, format="json")
    assert response.status_code == 201, response.json()
    export = Export.objects.get()
    assert list(export.results.values_list("pk", flat=True)) == [agreed.pk]


# --- The schema ------------------------------------------------------------------


def test_the_schema_is_served_without_a_token_and_lists_every_path(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    routes = {
        f"{API}/" + str(p.pattern).replace("<str:", "{").replace(">", "}")
        for p in curation_api_urls.urlpatterns
        if isinstance(p, URLPattern) and p.name and p.name != "curation-api-schema"
    }
    assert set(schema["paths"]) == routes
    assert schema["components"]["securitySchemes"] == {
        "ReviewerTokenAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "A reviewer token (rt-bs-…) from create_reviewer_token or the admin.",
        }
    }
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation["security"] == [{"ReviewerTokenAuth": []}], where
            for status in ("401", "429"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == error, where
    # Valid OpenAPI 3.1 (schemathesis' copy of the official meta-schema).
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    OPENAPI_31_VALIDATOR.validate(schema)


def test_unknown_paths_under_the_api_are_json_404(agent_client):
    for url in [f"{API}/nope", f"{API}/queues/", f"{API}/queues/1/items"]:
        response = agent_client.post(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "unknown_url"


# --- Humans and an agent on one queue at once ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_agent_and_two_humans_work_one_queue_at_once(live_server, owner, carol, dave, agent):
    """The agent claims and submits over HTTP with its token while two people
    work through the services, until the queue is empty: every item gets exactly
    two different reviewers, and every judgment is its reviewer's own."""
    batch = make_batch(owner, count=20, prefix="c")
    queue = make_queue(carol, batch, name="together", reviewers_per_item=2)
    token = token_create(user=agent)[1]
    # Each reviewer scores with their own number: attribution shows in the data.
    scores = {"agent-1": 11, "carol": 22, "dave": 33}
    done = {name: 0 for name in scores}
    progress = threading.Condition()
    finished = threading.Event()
    start = threading.Barrier(3, timeout=60)

    def record(name: str) -> None:
        with progress:
            done[name] += 1
            progress.notify_all()

    def agent_works() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(
                base_url=f"{live_server.url}{API}", headers=headers, timeout=60
            ) as http:
                start.wait()
                while True:
                    claimed = http.post(f"/queues/{queue.pk}/claim")
                    if claimed.status_code == 409:  # the queue was busy: try again
                        continue
                    assert claimed.status_code == 200, claimed.text
                    item = claimed.json()["item"]
                    if item is None:
                        return
                    body = {"quality": scores["agent-1"], "category": "good"}
                    submitted = http.post(
                        f"/queues/{queue.pk}/items/{item['id']}/submit", json=body
                    )
                    assert submitted.status_code == 200, submitted.text
                    record("agent-1")
        finally:
            finished.set()
            with progress:
                progress.notify_all()

    def human_works(user) -> None:
        name = user.get_username()
        try:
            start.wait()
            while True:
                # Keep pace with the agent (HTTP is slower than a service call), so
                # that all three really share the queue; never a blind sleep.
                with progress:
                    assert progress.wait_for(
                        lambda: finished.is_set() or done["agent-1"] + 3 >= done[name],
                        timeout=120,
                    ), "the agent stopped making progress"
                try:
                    review = queues.claim_next(queue=queue, reviewer=user)
                except ApplicationError as error:
                    assert error.code == "queue_busy"
                    continue
                if review is None:
                    return
                queues.item_submit(
                    queue=queue,
                    item_id=review.item_id,
                    reviewer=user,
                    submission=queues.Submission(changes={"quality": scores[name]}),
                )
                record(name)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=agent_works, name="agent"),
        threading.Thread(target=human_works, args=(carol,), name="carol"),
        threading.Thread(target=human_works, args=(dave,), name="dave"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
        assert not thread.is_alive(), f"{thread.name} did not finish"

    items = list(QueueItem.objects.filter(queue=queue))
    assert len(items) == 20
    reviews = ItemReview.objects.filter(queue=queue)
    assert not reviews.exclude(state=ItemReview.State.DONE).exists()
    for item in items:
        reviewers = list(reviews.filter(item=item).values_list("reviewer__username", flat=True))
        assert len(reviewers) == 2 == len(set(reviewers)), (item.pk, reviewers)
        assert item.done_count == 2
        judged = dict(
            Judgment.objects.filter(request_id=item.request_id).values_list(
                "reviewer__username", "quality"
            )
        )
        assert judged == {name: scores[name] for name in reviewers}
    assert sum(done.values()) == 40
    assert all(done[name] >= 3 for name in scores), done
    edits = JudgmentEdit.objects.filter(judgment__request__batch=batch)
    assert not edits.exclude(editor=F("judgment__reviewer")).exists()
