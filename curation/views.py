"""The viewer's pages (port 8001). Staff only; everyone else goes to the login page."""

from urllib.parse import quote as urlquote

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.text import quoted
from curation import agreement, queues, selectors


def _filter_query(request: HttpRequest) -> str:
    """The filter part of the query string, without the page cursors."""
    params = request.GET.copy()
    for cursor in ("before", "after"):
        params.pop(cursor, None)
    # The default order, or one the table does not know (which it says), is not carried on.
    if not selectors.result_sort(params.get("sort")).param:
        params.pop("sort", None)
    return params.urlencode()


def _sort_headers(request: HttpRequest, sort: selectors.ResultSort) -> dict[str, dict]:
    """Per sortable column: the link that sorts by it (highest first, or the
    other way round when it already is) and, for the current one, its arrow."""
    headers = {}
    for key in selectors.SORT_FIELDS:
        params = request.GET.copy()
        for name in ("before", "after", "sort"):
            params.pop(name, None)
        current = sort.key == key
        params["sort"] = key if current and sort.descending else f"-{key}"
        headers[key] = {
            "query": params.urlencode(),
            "arrow": ("▼" if sort.descending else "▲") if current else "",
            "aria_sort": ("descending" if sort.descending else "ascending") if current else "none",
        }
    return headers


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "viewer/dashboard.html",
        {
            "dashboard": selectors.dashboard(),
            "queues": queues.queues_overview(user=request.user, limit=20),
        },
    )


@staff_member_required
def results(request: HttpRequest) -> HttpResponse:
    filters = selectors.results_filter(params=request.GET, user=request.user)
    asked = request.GET.get("sort", "")
    sort = selectors.result_sort(asked)
    page = selectors.results_page(
        queryset=filters.qs,
        sort=sort,
        before=request.GET.get("before"),
        after=request.GET.get("after"),
    )
    return render(
        request,
        "viewer/results.html",
        {
            "filter": filters,
            "page": page,
            "query": _filter_query(request),
            "sort": sort,
            "sort_headers": _sort_headers(request, sort),
            # An order the table does not know: shown newest first, and said so.
            "sort_unknown": quoted(asked) if asked and sort.param != asked else "",
        },
    )


@staff_member_required
def review(request: HttpRequest, pk: int) -> HttpResponse:
    result = selectors.result_get(pk=pk)
    filters = selectors.results_filter(params=request.GET, user=request.user)
    newer, older = selectors.result_neighbours(
        queryset=filters.qs, pk=pk, sort=selectors.result_sort(request.GET.get("sort"))
    )
    return render(
        request,
        "viewer/review.html",
        {
            "result": result,
            "comparable": selectors.comparable_batches(result),
            "judgments": agreement.result_judgments(result=result),
            "newer": newer,
            "older": older,
            "query": _filter_query(request),
        },
    )


@staff_member_required
def compare(request: HttpRequest) -> HttpResponse:
    public_ids = request.GET.getlist("batch")
    blind = request.GET.get("blind") == "1"
    context = {"choices": selectors.compare_choices(), "selected": public_ids, "blind": blind}
    if len(public_ids) >= 2:
        batches = selectors.compare_batches(public_ids)
        context["batches"] = batches
        context["item"] = selectors.compare_item(
            batches=batches, custom_id=request.GET.get("custom_id"), user=request.user, blind=blind
        )
        batch_query = "&".join(f"batch={urlquote(b.public_id)}" for b in batches)
        # The pager keeps the mode; the switch flips it on the same input.
        context["batch_query"] = f"{batch_query}&blind=1" if blind else batch_query
        custom_id = context["item"].custom_id if context["item"] else None
        toggle = f"{batch_query}&blind=1" if not blind else batch_query
        if custom_id:
            toggle += f"&custom_id={urlquote(custom_id, safe='')}"
        context["blind_toggle_query"] = toggle
    return render(request, "viewer/compare.html", context)
