"""The viewer's pages (port 8001). Staff only; everyone else goes to the login page."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from curation import selectors


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _filter_query(request: HttpRequest) -> str:
    """The filter part of the query string, without the page cursors."""
    params = request.GET.copy()
    for cursor in ("before", "after"):
        params.pop(cursor, None)
    return params.urlencode()


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "viewer/dashboard.html", {"dashboard": selectors.dashboard()})


@staff_member_required
def results(request: HttpRequest) -> HttpResponse:
    filters = selectors.results_filter(params=request.GET, user=request.user)
    page = selectors.results_page(
        queryset=filters.qs,
        before=_int(request.GET.get("before")),
        after=_int(request.GET.get("after")),
    )
    return render(
        request,
        "viewer/results.html",
        {"filter": filters, "page": page, "query": _filter_query(request)},
    )


@staff_member_required
def review(request: HttpRequest, pk: int) -> HttpResponse:
    result = selectors.result_get(pk=pk)
    filters = selectors.results_filter(params=request.GET, user=request.user)
    newer, older = selectors.result_neighbours(queryset=filters.qs, pk=pk)
    return render(
        request,
        "viewer/review.html",
        {
            "result": result,
            "comparable": selectors.comparable_batches(result),
            "newer": newer,
            "older": older,
            "query": _filter_query(request),
        },
    )


@staff_member_required
def compare(request: HttpRequest) -> HttpResponse:
    public_ids = request.GET.getlist("batch")
    context = {"choices": selectors.compare_choices(), "selected": public_ids}
    if len(public_ids) >= 2:
        batches = selectors.compare_batches(public_ids)
        context["batches"] = batches
        context["item"] = selectors.compare_item(
            batches=batches, custom_id=request.GET.get("custom_id"), user=request.user
        )
        context["batch_query"] = "&".join(f"batch={b.public_id}" for b in batches)
    return render(request, "viewer/compare.html", context)
