"""Each results filter returns the right rows, alone and combined; state lives in the URL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from batches.models import Request
from curation import services
from curation.models import Star
from curation.selectors import PAGE_SIZE, results_filter, results_page
from tests.factories import make_batch

pytestmark = pytest.mark.django_db(transaction=True)  # full-text search triggers, on SQLite too


@pytest.fixture
def world(owner, carol, dave):
    a = make_batch(owner, model="tiny-chat", count=4, prefix="a")
    b = make_batch(owner, model="other-model", count=3, prefix="b")
    rows = {r.custom_id: r for r in Request.objects.all()}
    Star.objects.create(request=rows["a-0"], user=carol)
    Star.objects.create(request=rows["a-1"], user=dave)
    Star.objects.create(request=rows["b-0"], user=carol)
    services.annotation_update(
        request=rows["a-0"],
        user=carol,
        changes={"quality": 90, "category": "excellent", "tags": ["senior"]},
    )
    services.annotation_update(
        request=rows["a-2"], user=carol, changes={"quality": 50, "category": "good"}
    )
    services.annotation_update(
        request=rows["b-1"], user=dave, changes={"quality": 85, "tags": ["Senior", "rust"]}
    )
    Request.objects.filter(pk=rows["b-2"].pk).update(
        status=Request.Status.FAILED, finished_at=timezone.now() - timedelta(days=3)
    )
    return {"a": a, "b": b, "rows": rows}


def ids(params: dict, user) -> list[str]:
    filters = results_filter(params=params, user=user)
    assert filters.is_valid(), filters.errors
    return sorted(filters.qs.values_list("custom_id", flat=True))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["a-0", "a-1", "a-2", "a-3", "b-0", "b-1", "b-2"]),
        ({"model": "other-model"}, ["b-0", "b-1", "b-2"]),
        ({"status": "failed"}, ["b-2"]),
        ({"starred": "yes"}, ["a-0", "a-1", "b-0"]),
        ({"starred": "no"}, ["a-2", "a-3", "b-1", "b-2"]),
        ({"starred": "me"}, ["a-0", "b-0"]),
        ({"quality_min": "80"}, ["a-0", "b-1"]),
        ({"quality_min": "40", "quality_max": "60"}, ["a-2"]),
        ({"category": "excellent"}, ["a-0"]),
        ({"tag": "senior"}, ["a-0", "b-1"]),
        ({"tag": "rust"}, ["b-1"]),
        ({"q": "hire 1"}, ["a-1", "b-1"]),
        ({"q": "other-model"}, ["b-0", "b-1"]),
        ({"q": "Rust python"}, ["a-0", "a-1", "a-2", "a-3", "b-0", "b-1"]),
        ({"q": "evaluate"}, []),  # the shared system prompt is not indexed
        ({"q": '"quoted" AND OR NOT *'}, []),
        ({"q": "   "}, ["a-0", "a-1", "a-2", "a-3", "b-0", "b-1", "b-2"]),
        ({"model": "tiny-chat", "starred": "yes", "quality_min": "80"}, ["a-0"]),
    ],
)
def test_each_filter_returns_the_right_rows(world, carol, params, expected):
    assert ids(params, carol) == expected


def test_batch_starred_by_and_date_filters(world, carol, dave):
    assert ids({"batch": world["b"].public_id}, carol) == ["b-0", "b-1", "b-2"]
    assert ids({"starred_by": str(dave.pk)}, carol) == ["a-1"]
    today = timezone.now().date().isoformat()
    assert "b-2" not in ids({"finished_after": today}, carol)
    assert ids(
        {"finished_before": (timezone.now() - timedelta(days=2)).date().isoformat()}, carol
    ) == ["b-2"]


def test_invalid_filter_values_are_reported_not_crashing(world, carol_client):
    response = carol_client.get("/results/?quality_min=lots&batch=batch_nope&status=sleeping")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a number" in html or "whole number" in html


def test_the_table_page_shows_rows_and_keeps_filters_in_links(world, carol_client):
    html = carol_client.get("/results/?model=tiny-chat&starred=yes").content.decode()
    assert html.count("<tr data-result-id") == 2
    review_link = f"/results/{world['rows']['a-0'].pk}/?model=tiny-chat&amp;starred=yes"
    assert review_link in html
    assert "tiny-chat says hire 0" in html and "Candidate 0 writes Rust" in html


def test_pages_are_keyset_paginated_and_the_count_is_capped(owner, carol, settings):
    make_batch(owner, count=PAGE_SIZE * 2 + 5)
    queryset = results_filter(params={}, user=carol).qs
    first = results_page(queryset=queryset)
    assert len(first.rows) == PAGE_SIZE and first.newer is None and first.count == 105
    second = results_page(queryset=queryset, before=first.older)
    third = results_page(queryset=queryset, before=second.older)
    assert len(third.rows) == 5 and third.older is None
    seen = [r.pk for page in (first, second, third) for r in page.rows]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 105
    back = results_page(queryset=queryset, after=second.newer)
    assert [r.pk for r in back.rows] == [r.pk for r in first.rows]


def test_the_count_stops_at_the_cap(owner, carol, monkeypatch):
    monkeypatch.setattr("curation.selectors.COUNT_CAP", 3)
    make_batch(owner, count=6)
    page = results_page(queryset=results_filter(params={}, user=carol).qs)
    assert page.count == 4 and page.count_is_capped
