"""The agreement pages, the disagreement list and the settle form (test client)."""

import re

import pytest
from django.test import Client

from curation import queues
from curation.models import Annotation, Judgment, JudgmentEdit, QueueItem
from tests.factories import make_batch

pytestmark = pytest.mark.django_db


def _work(queue, reviewer, submissions):
    for submission in submissions:
        claimed = queues.claim_next(queue=queue, reviewer=reviewer)
        queues.item_submit(
            queue=queue, item_id=claimed.item_id, reviewer=reviewer, submission=submission
        )


def S(quality, category="good"):  # a submission, short: tables of them
    return queues.Submission(changes={"quality": quality, "category": category})


@pytest.fixture
def queue(owner, carol, dave):
    """Three items, two reviewers each: agree, 50 points apart, a category split."""
    batch = make_batch(owner, count=3)
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="screening",
            filter_query=f"batch={batch.public_id}",
            fields=("quality", "category"),
            reviewers_per_item=2,
        ),
        created_by=carol,
    )
    _work(queue, carol, [S(80), S(90), S(60, "good")])
    _work(queue, dave, [S(80), S(40), S(60, "excellent")])
    return queue


def _item(queue, position):
    return QueueItem.objects.select_related("request").get(queue=queue, position=position)


def _settle_url(result_id):
    return f"/agreement/results/{result_id}/settle"


def test_the_index_lists_queues_with_overlap_and_their_numbers(queue, carol_client):
    page = carol_client.get("/agreement/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "screening" in html
    assert f'href="/agreement/queues/{queue.pk}/"' in html
    assert "NaN" not in html
    assert ">nan<" not in html.lower()
    assert 'href="/agreement/"' in html  # the nav link


def test_the_queue_page_shows_metrics_pairs_and_reasons(queue, carol_client):
    html = carol_client.get(f"/agreement/queues/{queue.pk}/").content.decode()
    assert re.search(
        r'id="metric-quality-alpha".*?<span class="figure">0\.\d{3}</span>', html, re.S
    )
    assert re.search(r"carol · dave</td>\s*<td class=\"num\">3</td>", html)
    # Stars and preferences are not asked in this queue: "—" and why.
    stars = re.search(r'id="metric-stars".*?</div>', html, re.S).group(0)
    assert "—" in stars
    assert "this queue does not ask for stars" in stars.lower()
    assert "NaN" not in html


def test_the_disagreement_list_shows_reviewers_side_by_side(queue, carol_client):
    response = carol_client.get(f"/agreement/queues/{queue.pk}/disagreements/?quality_gap=20")
    assert response.status_code == 200
    html = response.content.decode()
    second, third, first = _item(queue, 2), _item(queue, 3), _item(queue, 1)
    assert f'id="item-{second.pk}"' in html
    assert f'id="item-{third.pk}"' in html
    assert f'id="item-{first.pk}"' not in html  # they agree
    assert f'href="/results/{second.request_id}/"' in html
    assert "Candidate 1 writes Rust and Python." in html  # the prompt excerpt
    assert "tiny-chat says hire 1" in html  # the response excerpt
    article = html[html.index(f'id="item-{second.pk}"') :]
    article = article[: article.index("</article>")]
    assert "quality 40 to 90" in article
    assert re.search(r'data-reviewer="carol">.*?class="num quality">90<', article, re.S)
    assert re.search(r'data-reviewer="dave">.*?class="num quality">40<', article, re.S)
    # The settle form is prefilled with the derived metadata (the mean, 65).
    assert 'name="quality" min="0" max="100" value="65"' in article
    assert 'name="csrfmiddlewaretoken"' in article
    assert carol_client.get(f"/agreement/queues/{queue.pk}/disagreements/?quality_gap=60")


def test_settling_is_attributed_to_the_session_and_the_item_leaves_the_list(
    queue, carol, dave, carol_client
):
    item = _item(queue, 2)
    back = f"/agreement/queues/{queue.pk}/disagreements/?quality_gap=20"
    response = carol_client.post(
        _settle_url(item.request_id),
        {
            "queue": queue.pk,
            "next": back,
            "quality": "70",
            "category": "excellent",
            "tags": "senior, rust",
            "notes": "Decided.",
            "reviewer": dave.pk,  # ignored: the decision is the session user's
            "adjudicator": "dave",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == back
    decision = Judgment.objects.get(request=item.request, role="adjudication")
    assert decision.reviewer == carol
    annotation = Annotation.objects.get(pk=item.request_id)
    assert (annotation.quality, annotation.category, annotation.notes) == (
        70,
        "excellent",
        "Decided.",
    )
    assert sorted(annotation.tags.values_list("name", flat=True)) == ["rust", "senior"]

    html = carol_client.get(back).content.decode()
    assert "Settled cand-1." in html
    assert f'id="item-{item.pk}"' not in html
    assert "1 settled, hidden" in html
    html = carol_client.get(back + "&include_settled=1").content.decode()
    article = html[html.index(f'id="item-{item.pk}"') :]
    assert "settled by carol" in article[: article.index("</article>")]

    review = carol_client.get(f"/results/{item.request_id}/").content.decode()
    judgments = review[review.index('id="judgments"') :]
    assert re.search(
        r'data-reviewer="carol">\s*<td>carol <span class="badge adjudication">', judgments
    )
    assert "Edit history (3)" in judgments


def test_settling_needs_the_csrf_token(queue, carol):
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    item = _item(queue, 2)
    response = client.post(_settle_url(item.request_id), {"queue": queue.pk, "quality": "70"})
    assert response.status_code == 403
    assert not Judgment.objects.filter(role="adjudication").exists()


def test_non_staff_and_anonymous_users_cannot_settle(queue, django_user_model):
    item = _item(queue, 2)
    eve = django_user_model.objects.create_user("eve", password="pw")
    staffless = Client()
    staffless.force_login(eve)
    for client in (Client(), staffless):
        response = client.post(_settle_url(item.request_id), {"queue": queue.pk, "quality": "5"})
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
        for path in ("/agreement/", f"/agreement/queues/{queue.pk}/disagreements/"):
            assert "/admin/login/" in client.get(path)["Location"]
    assert not Judgment.objects.filter(role="adjudication").exists()


def test_a_get_never_settles(queue, carol_client):
    item = _item(queue, 2)
    response = carol_client.get(_settle_url(item.request_id), {"quality": "70", "queue": queue.pk})
    assert response.status_code == 405
    assert not Judgment.objects.filter(role="adjudication").exists()


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        ({"quality": "abc"}, "Quality is a whole number from 0 to 100."),
        ({"quality": "500"}, "Quality is a score from 0 to 100."),
        ({"quality": "", "category": ""}, "A decision sets a quality or a category"),
        ({"category": "<script>x</script>" * 500}, "Category is one of excellent, good"),
        ({"tags": "x" * 60}, "A tag is at most 50 characters."),
        ({"tags": ",".join(f"t{i}" for i in range(25))}, "At most 20 tags per result."),
        ({"notes": "n" * 50_000}, "Notes are at most 10,000 characters."),
    ],
)
def test_bad_input_is_shown_at_its_item_and_nothing_is_stored(queue, carol_client, posted, message):
    item = _item(queue, 2)
    before = (Annotation.objects.get(pk=item.request_id).quality, JudgmentEdit.objects.count())
    data = {"queue": queue.pk, "next": f"/agreement/queues/{queue.pk}/disagreements/"}
    data |= {"quality": "70", "category": "good", "tags": "", "notes": ""} | posted
    response = carol_client.post(_settle_url(item.request_id), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "Nothing was recorded." in html
    article = html[html.index(f'id="item-{item.pk}"') :]
    assert message in article[: article.index("</article>")]  # at its item
    assert len(html) < 60_000  # nothing unbounded is echoed back
    assert "<script>x" not in html
    assert not Judgment.objects.filter(role="adjudication").exists()
    after = (Annotation.objects.get(pk=item.request_id).quality, JudgmentEdit.objects.count())
    assert after == before


def test_settle_never_redirects_off_site(queue, carol_client):
    item = _item(queue, 2)
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = carol_client.post(
            _settle_url(item.request_id),
            {"queue": queue.pk, "next": target, "quality": "70", "category": "good"},
        )
        assert response.status_code == 302
        assert response["Location"] == f"/agreement/queues/{queue.pk}/disagreements/"


def test_unknown_ids_are_not_found(queue, carol_client):
    huge = 2**70
    for path in (
        "/agreement/queues/999999/",
        f"/agreement/queues/{huge}/",
        f"/agreement/queues/{huge}/disagreements/",
    ):
        assert carol_client.get(path).status_code == 404, path
    for result_id in (999_999, huge):
        response = carol_client.post(_settle_url(result_id), {"quality": "5"})
        assert response.status_code == 404
    assert not Judgment.objects.filter(role="adjudication").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("quality_gap=0", "The quality gap is 1 to 100 points."),
        ("quality_gap=abc", "The quality gap is a whole number"),
        ("quality_gap=" + "9" * 5000, "The quality gap is"),
        ("after=-1", "Ensure this value is greater than or equal to 0."),
        ("after=" + "9" * 40, "Ensure this value is less than or equal to"),
    ],
)
def test_bad_list_options_get_a_clear_error(queue, carol_client, query, message):
    response = carol_client.get(f"/agreement/queues/{queue.pk}/disagreements/?{query}")
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "9" * 100 not in html


def test_a_settle_form_without_a_queue_still_explains_the_error(queue, carol_client):
    item = _item(queue, 2)
    response = carol_client.post(_settle_url(item.request_id), {"quality": "x" * 300})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Quality is a whole number from 0 to 100." in html
    assert "x" * 100 not in html
    assert not Judgment.objects.filter(role="adjudication").exists()
