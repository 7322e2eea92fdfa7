"""Blind, fair comparison: POST /api/compare/verdict (winner, tie, both bad) and
the compare page's blind mode (names hidden until the verdict, a stable shuffle)."""

import re

import pytest
from django.test import Client

from curation.models import Comparison, Preference, Star
from curation.selectors import blind_order, compare_item
from tests.factories import make_batch

VERDICT = "/api/compare/verdict"


@pytest.fixture
def pair(owner):
    first = make_batch(owner, model="tiny-chat", count=3, prefix="c")
    second = make_batch(owner, model="other-model", count=3, prefix="c")
    return first, second


@pytest.fixture
def inputs(pair):
    first, second = pair
    return {
        i: (first.requests.get(custom_id=f"c-{i}"), second.requests.get(custom_id=f"c-{i}"))
        for i in range(3)
    }


def verdict(client, **body):
    return client.post(VERDICT, body, "application/json")


def test_each_outcome_is_recorded_and_replaces_the_last(inputs, carol_client, carol):
    a, b = inputs[0]
    response = verdict(carol_client, candidates=[a.pk, b.pk], outcome="winner", winner=b.pk)
    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["winner"], body["blind"]) == ("winner", b.pk, False)
    comparison = Comparison.objects.get()
    assert (comparison.user, comparison.outcome, comparison.winner_id) == (carol, "winner", b.pk)
    assert sorted(comparison.candidates.values_list("pk", flat=True)) == sorted([a.pk, b.pk])
    assert list(Preference.objects.values_list("chosen", "rejected")) == [(b.pk, a.pk)]
    assert Star.objects.filter(request=b, user=carol).exists()
    named = {c["result_id"]: c for c in body["candidates"]}
    assert named[b.pk]["model"] == "other-model" and named[a.pk]["model"] == "tiny-chat"
    assert named[b.pk]["review_url"] == f"/results/{b.pk}/" and named[b.pk]["starred"]

    response = verdict(carol_client, candidates=[b.pk, a.pk], outcome="tie", blind=True)
    assert response.status_code == 200 and response.json()["winner"] is None
    comparison = Comparison.objects.get()  # replaced, not added
    assert (comparison.outcome, comparison.winner_id, comparison.blind) == ("tie", None, True)
    assert not Preference.objects.exists()

    response = verdict(carol_client, candidates=[a.pk, b.pk], outcome="both_bad", winner=None)
    assert response.status_code == 200
    comparison = Comparison.objects.get()
    assert (comparison.outcome, comparison.winner_id, comparison.blind) == ("both_bad", None, False)


def test_verdicts_are_per_reviewer(inputs, carol_client, dave):
    a, b = inputs[1]
    Comparison.objects.create(
        user=dave, candidates_key=Comparison.key([a.pk, b.pk]), custom_id="c-1", outcome="tie"
    )
    body = {"candidates": [a.pk, b.pk], "outcome": "both_bad", "user": dave.pk}
    assert carol_client.post(VERDICT, body, "application/json").status_code == 200
    assert sorted(Comparison.objects.values_list("user__username", "outcome")) == [
        ("carol", "both_bad"),
        ("dave", "tie"),
    ]


def test_three_candidates_all_bad(owner, pair, carol_client):
    third = make_batch(owner, model="third-model", count=3, prefix="c")
    ids = [b.requests.get(custom_id="c-2").pk for b in (*pair, third)]
    response = verdict(carol_client, candidates=ids, outcome="both_bad")
    assert response.status_code == 200
    assert Comparison.objects.get().candidates.count() == 3


@pytest.mark.parametrize(
    "body, param",
    [
        ({"outcome": "tie"}, "candidates"),
        ({"candidates": [1], "outcome": "tie"}, "candidates"),
        ({"candidates": list(range(1, 23)), "outcome": "tie"}, "candidates"),
        ({"candidates": "1,2", "outcome": "tie"}, "candidates"),
        ({"candidates": [1, 2], "outcome": "draw"}, "outcome"),
        ({"candidates": [1, 2], "outcome": ["tie"]}, "outcome"),
        ({"candidates": [1, 2], "outcome": "winner"}, "winner"),
        ({"candidates": [1, 2], "outcome": "tie", "winner": 1}, "winner"),
        ({"candidates": [1, 2], "outcome": "winner", "winner": "x"}, "winner"),
        ({"candidates": [1, 2], "outcome": "tie", "blind": "perhaps"}, "blind"),
        ({"candidates": [2**63, 2], "outcome": "tie"}, "candidates"),
    ],
)
def test_hostile_verdicts_get_a_clear_400(inputs, carol_client, body, param):
    response = carol_client.post(VERDICT, body, "application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].startswith(param) and error["message"]
    assert not Comparison.objects.exists()


def test_candidates_must_answer_the_same_input_and_exist(inputs, carol_client):
    a, _ = inputs[0]
    _, other = inputs[1]
    response = verdict(carol_client, candidates=[a.pk, other.pk], outcome="tie")
    assert response.status_code == 400 and "same input" in response.json()["error"]["message"]
    response = verdict(carol_client, candidates=[a.pk, 999_999], outcome="tie")
    assert response.status_code == 400 and "Unknown result" in response.json()["error"]["message"]
    response = verdict(carol_client, candidates=[a.pk, a.pk], outcome="tie")
    assert response.status_code == 400 and "two responses" in response.json()["error"]["message"]
    b = inputs[0][1]
    response = verdict(carol_client, candidates=[a.pk, b.pk], outcome="winner", winner=other.pk)
    assert response.status_code == 400 and response.json()["error"]["param"] == "winner"
    assert not Comparison.objects.exists() and not Preference.objects.exists()


def test_csrf_staff_and_login_are_required(inputs, carol, client, django_user_model):
    a, b = inputs[0]
    body = {"candidates": [a.pk, b.pk], "outcome": "tie"}
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(carol)
    assert strict.post(VERDICT, body, "application/json").status_code == 403
    assert client.post(VERDICT, body, "application/json").status_code == 403
    client.force_login(django_user_model.objects.create_user("mallory", password="pw"))
    assert client.post(VERDICT, body, "application/json").status_code == 403
    assert not Comparison.objects.exists()


def test_the_old_winner_endpoint_still_works(inputs, carol_client, carol):
    a, b = inputs[0]
    body = {"winner": a.pk, "candidates": [a.pk, b.pk]}
    assert carol_client.post("/api/compare/winner", body, "application/json").status_code == 200
    assert Comparison.objects.get().winner_id == a.pk


def side_by_side(html: str) -> str:
    return re.search(r'<section class="side-by-side".*?</section>', html, re.S).group(0)


def test_blind_mode_hides_names_until_the_verdict(pair, inputs, carol_client):
    first, second = pair
    url = f"/compare/?batch={first.public_id}&batch={second.public_id}&blind=1&custom_id=c-1"
    html = carol_client.get(url).content.decode()
    sides = side_by_side(html)
    # (The factory's responses name their model: the headers and links must not.)
    headers = "".join(re.findall(r"<header>.*?</header>", sides, re.S))
    for name in ("tiny-chat", "other-model", first.public_id, second.public_id):
        assert name not in headers and f"<code>{name}</code>" not in sides
    assert 'href="/results/' not in sides and "model and batch hidden until your verdict" in headers
    assert "Response A" in sides and "Response B" in sides
    assert 'data-blind="true" data-revealed="false"' in sides
    # Navigation keeps the mode; the switch turns it off on the same input.
    assert "blind=1&amp;custom_id=c-2" in html and "blind=1&amp;custom_id=c-0" in html
    assert re.search(r'id="blind-toggle" href="\?[^"]*custom_id=c-1" aria-pressed="true"', html)

    a, b = inputs[1]
    verdict(carol_client, candidates=[a.pk, b.pk], outcome="tie", blind=True)
    html = carol_client.get(url).content.decode()
    sides = side_by_side(html)
    headers = "".join(re.findall(r"<header>.*?</header>", sides, re.S))
    assert "<strong>tiny-chat</strong>" in headers and "<strong>other-model</strong>" in headers
    assert 'data-revealed="true"' in sides and f'href="/results/{a.pk}/"' in sides
    assert re.search(r'class="verdict-badge" role="status">Tie<', html)
    assert Comparison.objects.get().blind is True


def test_without_blind_names_show_in_batch_order(pair, carol_client):
    first, second = pair
    html = carol_client.get(f"/compare/?batch={first.public_id}&batch={second.public_id}")
    sides = side_by_side(html.content.decode())
    assert sides.index("tiny-chat") < sides.index("other-model")
    assert "Response A" not in sides and 'data-blind="false"' in sides


def test_the_current_verdict_shows(pair, inputs, carol_client):
    first, second = pair
    a, b = inputs[0]
    query = f"/compare/?batch={first.public_id}&batch={second.public_id}&custom_id=c-0"
    verdict(carol_client, candidates=[a.pk, b.pk], outcome="both_bad")
    html = carol_client.get(query).content.decode()
    assert re.search(r'class="verdict-badge" role="status">Both bad<', html)
    assert "candidate winner" not in html
    verdict(carol_client, candidates=[a.pk, b.pk], outcome="winner", winner=a.pk)
    html = carol_client.get(query).content.decode()
    assert f'class="candidate winner" data-result-id="{a.pk}"' in html
    assert re.search(r'class="verdict-badge" role="status"><', html)


def test_the_blind_order_is_random_per_input_but_stable_per_reviewer(owner, carol, dave):
    batches = [make_batch(owner, model=f"m{i}", count=40, prefix="c") for i in range(3)]
    orders = {}
    for user in (carol, dave):
        for i in range(40):
            item = compare_item(batches=batches, custom_id=f"c-{i}", user=user, blind=True)
            again = compare_item(batches=batches[::-1], custom_id=f"c-{i}", user=user, blind=True)
            models = [r.batch.model for r in item.responses]
            assert models == [r.batch.model for r in again.responses]  # stable, any URL order
            assert [s.label for s in item.sides] == ["A", "B", "C"]
            orders[(user.pk, i)] = tuple(models)
    carol_orders = [orders[(carol.pk, i)] for i in range(40)]
    assert len(set(carol_orders)) > 1  # not one fixed order for every input
    assert sum(carol_orders.count(o) for o in {("m0", "m1", "m2")}) < 40
    assert any(orders[(carol.pk, i)] != orders[(dave.pk, i)] for i in range(40))  # per reviewer
    item = compare_item(batches=batches, custom_id="c-0", user=carol, blind=False)
    assert [r.batch.model for r in item.responses] == ["m0", "m1", "m2"]
    responses = list(item.responses)
    assert blind_order(responses, user=carol, custom_id="c-0") == blind_order(
        responses[::-1], user=carol, custom_id="c-0"
    )


def test_a_pick_made_before_verdicts_existed_counts_as_one(pair, inputs, carol):
    """A Preference among the page's responses without a Comparison (a pairwise
    queue's pick among two of three, say) shows as the winner and reveals."""
    first, second = pair
    a, b = inputs[2]
    Preference.objects.create(chosen=b, rejected=a, user=carol)
    item = compare_item(batches=[first, second], custom_id="c-2", user=carol, blind=True)
    assert item.winner_id == b.pk and item.verdict is None and item.revealed
