"""The viewer's JSON endpoints under a double click and hostile bodies: one
consistent answer, or a 400 in the viewer's JSON shape with nothing logged at ERROR."""

import json
import logging
import threading

import pytest
from django.db import connection
from django.db.models import QuerySet

from curation import services
from curation.models import Preference, Star
from tests.factories import make_batch
from tests.helpers import wait_for


@pytest.fixture
def no_errors_logged(caplog):
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def _another_transaction_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("picks", ["same winner twice", "one winner, then the other"])
def test_two_concurrent_picks_leave_one_consistent_preference(owner, carol, monkeypatch, picks):
    """A double click sends two picks at once. On PostgreSQL both used to find no
    preference, and both inserted theirs: the same rows (an IntegrityError) or
    opposite ones. Each pick is held between deleting the old preferences and
    inserting its own until the other pick is there too, or is waiting for a
    lock the first holds.

    SQLite takes its write lock when a transaction begins, so there the picks
    cannot interleave at all; the test runs them concurrently all the same.
    """
    a = make_batch(owner, model="tiny-chat", count=1, prefix="c").requests.get()
    b = make_batch(owner, model="other-model", count=1, prefix="c").requests.get()
    winners = [b.pk, b.pk] if picks == "same winner twice" else [b.pk, a.pk]

    arrived: list[int] = []
    delete = QuerySet.delete

    def held_delete(queryset):
        deleted = delete(queryset)
        if queryset.model is Preference and connection.vendor == "postgresql":
            arrived.append(threading.get_ident())
            wait_for(
                lambda: len(arrived) == 2 or _another_transaction_waits_for_a_lock(),
                timeout=300,
                interval=0.05,
                message="the other pick neither arrived nor waited for a lock",
            )
        return deleted

    monkeypatch.setattr(QuerySet, "delete", held_delete)
    failures: list[BaseException] = []

    def pick(winner_id: int) -> None:
        try:
            services.winner_pick(winner_id=winner_id, candidate_ids=[a.pk, b.pk], user=carol)
        except BaseException as error:  # reported by the test, not the thread hook
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=pick, args=[winner]) for winner in winners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a pick never finished"
    assert not failures, failures

    preferences = list(Preference.objects.values_list("chosen", "rejected", "user"))
    assert len(preferences) == 1, preferences  # one pick's, never both
    chosen, rejected, user = preferences[0]
    assert {chosen, rejected} == {a.pk, b.pk} and user == carol.pk
    assert Star.objects.filter(request_id=chosen, user=carol).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"winner": 2**63, "candidates": [1, 2]},
        {"winner": 1, "candidates": [1, 2**64]},
        {"winner": 0, "candidates": [1, 2]},
        {"winner": -1, "candidates": [-1, 2]},
    ],
)
def test_ids_beyond_the_id_range_are_a_400(carol_client, body, no_errors_logged):
    response = carol_client.post("/api/compare/winner", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] in ("winner", "candidates", "candidates.1")
    assert not Preference.objects.exists()


def test_a_star_for_an_id_beyond_the_range_is_a_400(carol_client, no_errors_logged):
    response = carol_client.post(
        "/api/gold-star", {"result_id": 2**70}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "result_id"


@pytest.mark.parametrize("path", ["/api/gold-star", "/api/compare/winner"])
def test_deeply_nested_json_is_a_400(carol_client, path, no_errors_logged):
    body = "[" * 100_000 + "]" * 100_000
    response = carol_client.post(path, body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"


def test_a_body_that_is_not_an_object_is_a_400(carol_client, no_errors_logged):
    for body in ("[1, 2]", '"star"', "5", "null", "{"):
        response = carol_client.post("/api/gold-star", body, content_type="application/json")
        assert response.status_code == 400, body
    assert not Star.objects.exists()
    assert json.loads(response.content)["error"]["message"]
