"""The results table sorted by quality, tokens, latency and date: keyset pages,
rows without a value last, filters, the review page's neighbours, hostile input."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from batches.models import Request
from curation.models import Annotation, CategoryChoices
from curation.selectors import (
    SORT_FIELDS,
    ResultSort,
    result_neighbours,
    result_sort,
    results_filter,
    results_page,
)
from tests.factories import make_batch

PAGE = 3

# Values per row, in line order: repeats (to page across equal values) and gaps.
TOKENS = [7, 3, None, 3, 9, None, 3, 3, 12, 0, 3]
LATENCY = [100, None, 50, 50, 50, None, 700, 50, 1, 50, None]
QUALITY = [80, None, 80, "unscored", 20, 80, None, 100, 0, 80, 55]  # "unscored": category only
MINUTES = [5, 5, None, 1, 5, 30, 5, None, 0, 5, 2]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr("curation.selectors.PAGE_SIZE", PAGE)


@pytest.fixture
def table(owner):
    """Eleven results of one batch with the values above, and one of another
    model (quality 90, 4 tokens) for the filters."""
    batch = make_batch(owner, count=len(TOKENS), prefix="r")
    other = make_batch(owner, model="other-model", count=1, prefix="o")
    start = timezone.now().replace(microsecond=123456)
    rows = list(batch.requests.order_by("line"))
    values: dict[str, dict[int, object]] = {key: {} for key in SORT_FIELDS}
    for row, tokens, latency, quality, minutes in zip(
        rows, TOKENS, LATENCY, QUALITY, MINUTES, strict=True
    ):
        finished = None if minutes is None else start + timedelta(minutes=minutes)
        Request.objects.filter(pk=row.pk).update(
            completion_tokens=tokens, latency_ms=latency, finished_at=finished
        )
        if quality == "unscored":
            Annotation.objects.create(request=row, category=CategoryChoices.GOOD)
            quality = None
        elif quality is not None:
            Annotation.objects.create(request=row, quality=quality)
        values["tokens"][row.pk] = tokens
        values["latency"][row.pk] = latency
        values["quality"][row.pk] = quality
        values["date"][row.pk] = finished
    extra = other.requests.get()
    Annotation.objects.create(request=extra, quality=90)
    Request.objects.filter(pk=extra.pk).update(completion_tokens=4)
    return {"batch": batch, "other": other, "values": values, "extra": extra}


def expected(values: dict[int, object], descending: bool) -> list[int]:
    """The order the table promises: rows with a value by (value, id), then the
    others by id, both in the sort's direction."""
    valued = sorted(((v, pk) for pk, v in values.items() if v is not None), reverse=descending)
    empty = sorted((pk for pk, v in values.items() if v is None), reverse=descending)
    return [pk for _, pk in valued] + empty


def every_page(queryset, sort: ResultSort) -> list[list[int]]:
    """Page by page to the end, then back to the start by the pages' own
    cursors; going back must give the same pages."""
    page = results_page(queryset=queryset, sort=sort)
    assert page.newer is None
    pages = [page]
    while page.older:
        page = results_page(queryset=queryset, sort=sort, before=page.older)
        pages.append(page)
    back = [pages[-1]]
    while back[0].newer:
        back.insert(0, results_page(queryset=queryset, sort=sort, after=back[0].newer))
    forward_ids = [[r.pk for r in p.rows] for p in pages]
    assert [[r.pk for r in p.rows] for p in back] == forward_ids
    return forward_ids


@pytest.mark.parametrize("descending", [True, False], ids=["descending", "ascending"])
@pytest.mark.parametrize("key", list(SORT_FIELDS))
def test_each_column_sorts_both_ways_with_rows_without_a_value_last(table, carol, key, descending):
    batch_only = results_filter(params={"batch": table["batch"].public_id}, user=carol).qs
    pages = every_page(batch_only, ResultSort(key=key, descending=descending))
    assert all(len(ids) == PAGE for ids in pages[:-1]) and 0 < len(pages[-1]) <= PAGE
    assert [pk for ids in pages for pk in ids] == expected(table["values"][key], descending)


def test_the_default_order_is_newest_first_as_before(table, carol):
    queryset = results_filter(params={}, user=carol).qs
    ids = [pk for page in every_page(queryset, result_sort(None)) for pk in page]
    assert ids == sorted(Request.objects.values_list("pk", flat=True), reverse=True)
    assert results_page(queryset=queryset).rows[0].pk == table["extra"].pk


def test_a_sort_combines_with_the_filters_and_the_count(table, carol):
    params = {"model": "tiny-chat", "quality_min": "50"}
    queryset = results_filter(params=params, user=carol).qs
    ids = [pk for page in every_page(queryset, result_sort("-quality")) for pk in page]
    scored = {pk: q for pk, q in table["values"]["quality"].items() if q is not None and q >= 50}
    assert ids == expected(scored, descending=True)
    assert results_page(queryset=queryset, sort=result_sort("-quality")).count == len(scored)

    everything = results_filter(params={}, user=carol).qs
    first = results_page(queryset=everything, sort=result_sort("-quality"))
    assert [r.pk for r in first.rows][:2] == [
        max(table["values"]["quality"], key=lambda pk: (table["values"]["quality"][pk] or -1, pk)),
        table["extra"].pk,  # 90, the other model's
    ]


def test_a_page_boundary_inside_a_run_of_equal_values(table, carol):
    """Five rows have 3 tokens: the pages split them, and none is lost or shown twice."""
    queryset = results_filter(params={"batch": table["batch"].public_id}, user=carol).qs
    pages = every_page(queryset, result_sort("tokens"))
    threes = sorted(pk for pk, v in table["values"]["tokens"].items() if v == 3)
    flat = [pk for ids in pages for pk in ids]
    assert flat[1:6] == threes and len(set(flat)) == len(flat) == len(TOKENS)


@pytest.mark.parametrize("sort", ["-quality", "latency", "-date", ""])
def test_the_review_pages_neighbours_follow_the_tables_order(table, carol, sort):
    queryset = results_filter(params={"batch": table["batch"].public_id}, user=carol).qs
    order = [pk for ids in every_page(queryset, result_sort(sort)) for pk in ids]
    for i, pk in enumerate(order):
        newer, older = result_neighbours(queryset=queryset, pk=pk, sort=result_sort(sort))
        assert newer == (order[i - 1] if i > 0 else None)
        assert older == (order[i + 1] if i + 1 < len(order) else None)


def test_the_review_page_links_its_neighbours_in_the_sorted_order(table, carol_client):
    batch = table["batch"].public_id
    order = expected(table["values"]["latency"], descending=True)
    html = carol_client.get(f"/results/{order[1]}/?batch={batch}&sort=-latency").content.decode()
    assert f'href="/results/{order[0]}/?batch={batch}&amp;sort=-latency"' in html
    assert f'href="/results/{order[2]}/?batch={batch}&amp;sort=-latency"' in html


def test_headers_sort_link_and_show_the_current_order(table, carol_client):
    batch = table["batch"].public_id
    html = carol_client.get(f"/results/?batch={batch}&sort=-quality").content.decode()
    quality = re.search(r'<th class="num sortable" aria-sort="descending">(.*?)</th>', html)
    assert quality and "Quality" in quality.group(1) and "▼" in quality.group(1)
    assert f'href="?batch={batch}&amp;sort=quality"' in html  # clicking again: ascending
    assert f'href="?batch={batch}&amp;sort=-tokens"' in html  # other columns: highest first
    assert html.count('aria-sort="none"') == 3
    assert '<input type="hidden" name="sort" value="-quality">' in html  # survives filtering
    older = re.search(r'rel="next" href="\?([^"]*)"', html).group(1).replace("&amp;", "&")
    assert f"batch={batch}&sort=-quality&before=" in older  # survives paging
    second = carol_client.get(f"/results/?{older}").content.decode()
    assert "← Previous" in second and "sort=-quality&amp;after=" in second
    ascending = carol_client.get(f"/results/?batch={batch}&sort=quality").content.decode()
    assert 'aria-sort="ascending"' in ascending and "▲" in ascending


@pytest.mark.parametrize(
    "query",
    [
        "sort=bogus",
        "sort=-",
        "sort=--quality",
        "sort=" + "q" * 5000,
        "sort=pk",
        "sort=quality&sort=-tokens",
        "before=abc",
        "before=-5",
        "before=99999999999999999999999999",
        "before=9223372036854775808",
        "after=1_2_3",
        "sort=quality&before=_",
        "sort=quality&before=123",  # a default-order cursor in a sorted table
        "sort=-quality&before=999999_9223372036854775807",
        "sort=-quality&after=9223372036854775807_1",
        "sort=date&before=9223372036854775807_5",  # far past any date
        "sort=-date&after=99999999999999999999_5",
        "sort=tokens&before=5_%00",
        "before=%F0%9F%98%80",
    ],
)
def test_hostile_sort_and_cursors_fall_back_never_fail(table, carol_client, query):
    response = carol_client.get(f"/results/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<tr data-result-id" in html
    if "bogus" in query or "q" * 5000 in query:
        assert "Unknown sort" in html and "showing the newest first" in html
        assert "q" * 100 not in html  # the echo is bounded


def test_a_sorted_table_needs_no_query_per_row(table, carol_client, django_assert_max_num_queries):
    batch = table["batch"].public_id
    for sort in ["-quality", "tokens", "-latency", "date"]:
        with django_assert_max_num_queries(15):
            assert carol_client.get(f"/results/?batch={batch}&sort={sort}").status_code == 200


@pytest.mark.parametrize("sort", ["bogus", "-", "x" * 3000, "quality\x00"])
def test_the_review_page_ignores_an_unknown_sort(table, carol_client, sort):
    order = sorted(table["values"]["tokens"], reverse=True)  # newest first
    response = carol_client.get(
        f"/results/{order[1]}/", {"batch": table["batch"].public_id, "sort": sort}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/results/{order[0]}/?batch=' in html and "sort=" not in html
