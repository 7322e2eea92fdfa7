"""Review queue pages in the viewer (port 8001): list, create, progress, and the
work page. Staff session login; plain HTML forms with Django's CSRF check.

Each view parses, calls curation.queues, and renders or redirects: after every
POST a 303 to the page to show next, so a reload never submits twice.
"""

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.exceptions import ApplicationError, Conflict, NotFound
from curation import queues, selectors
from curation.apis import ID_MAX
from curation.forms import FILTER_MAX_LENGTH, ItemForm, QueueForm, filter_query
from curation.models import ItemReview, ReviewQueue


def _queue(pk: int) -> ReviewQueue | None:
    # A URL's number can exceed any row id; the database would refuse it, not find nothing.
    if pk > ID_MAX:
        return None
    return ReviewQueue.objects.filter(pk=pk).first()


def _problem(request: HttpRequest, *, status: int, title: str, message: str, queue=None):
    return render(
        request,
        "viewer/queue_denied.html",
        {"title": title, "message": message, "queue": queue},
        status=status,
    )


def _not_found(request: HttpRequest, what: str, queue: ReviewQueue | None = None):
    return _problem(request, status=404, title="Not found", message=f"No such {what}.", queue=queue)


def _not_assigned(request: HttpRequest, queue: ReviewQueue) -> HttpResponse:
    return _problem(
        request,
        status=403,
        title="Not your queue",
        message=(
            f"You ({request.user.get_username()}) are not among the reviewers of this queue. "
            "Ask whoever made it to add you."
        ),
        queue=queue,
    )


def _queue_page(*, work: bool = True):
    """Give the view the URL's queue (a 404 page when there is none) and, for
    working it, check the caller is among its reviewers (a 403 page)."""

    def decorate(view):
        @wraps(view)
        def wrapped(request: HttpRequest, pk: int, **kwargs) -> HttpResponse:
            queue = _queue(pk)
            if queue is None:
                return _not_found(request, "queue")
            if work and not queues.may_work(queue, request.user):
                return _not_assigned(request, queue)
            return view(request, queue, **kwargs)

        return wrapped

    return decorate


def _see_other(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _item_url(queue: ReviewQueue, item_id: int) -> str:
    return reverse("queue-item", args=[queue.pk, item_id])


def _next(queue: ReviewQueue, user) -> HttpResponseRedirect:
    """303 to the caller's next item, or to the queue page saying nothing is left."""
    claimed = queues.claim_next(queue=queue, reviewer=user)
    if claimed is None:
        return _see_other(reverse("queue-detail", args=[queue.pk]) + "?finished=1")
    return _see_other(_item_url(queue, claimed.item_id))


# --- List and create ---------------------------------------------------------------


@staff_member_required
@require_GET
def queue_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "viewer/queues.html", {"rows": queues.queues_overview(user=request.user)}
    )


@staff_member_required
@require_http_methods(["GET", "POST"])
def queue_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = QueueForm(request.POST)
        if form.is_valid():
            try:
                queue = queues.queue_create(spec=form.spec(), created_by=request.user)
            except ApplicationError as error:
                form.add_application_error(error)
            else:
                return _see_other(reverse("queue-detail", args=[queue.pk]))
        status = 400
    else:
        form = QueueForm(initial={"filter": request.GET.get("filter", "")[:FILTER_MAX_LENGTH]})
        status = 200
    return render(
        request,
        "viewer/queue_form.html",
        {
            "form": form,
            "preview": _preview(form, request),
            "batches": selectors.compare_choices(),
        },
        status=status,
    )


def _preview(form: QueueForm, request: HttpRequest) -> dict:
    """The filter in words and its result count, or why it is refused."""
    if form.is_bound:
        value = getattr(form, "cleaned_data", {}).get("filter")
        if value is None:  # the field itself was refused; its error says why
            return {}
    else:
        value = filter_query(form.initial.get("filter", ""))
    try:
        return {"selection": queues.selection_preview(filter_query=value, user=request.user)}
    except ApplicationError as error:
        return {"error": error.message}


# --- Progress -----------------------------------------------------------------------


@staff_member_required
@require_GET
@_queue_page(work=False)
def queue_detail(request: HttpRequest, queue: ReviewQueue) -> HttpResponse:
    return _detail(request, queue)


def _detail(request: HttpRequest, queue: ReviewQueue, *, error: str = "", status: int = 200):
    mine = ItemReview.objects.filter(
        queue=queue, reviewer=request.user, state=ItemReview.State.PENDING
    ).first()
    return render(
        request,
        "viewer/queue_detail.html",
        {
            "queue": queue,
            "progress": queues.queue_progress(queue=queue),
            "assigned": sorted(u.get_username() for u in queue.reviewers.all()),
            "may_work": queues.may_work(queue, request.user),
            "history": queues.reviewer_history(queue=queue, reviewer=request.user),
            "held": mine,
            "finished": request.GET.get("finished") == "1" and mine is None,
            "error": error,
        },
        status=status,
    )


@staff_member_required
@require_POST
@_queue_page()
def queue_next(request: HttpRequest, queue: ReviewQueue) -> HttpResponse:
    try:
        return _next(queue, request.user)
    except Conflict as error:
        return _detail(request, queue, error=error.message, status=error.status)


# --- The work page -------------------------------------------------------------------


def _item_context(request: HttpRequest, queue: ReviewQueue, item_id: int) -> dict | None:
    """The item page's context, or None when the item is not in the queue."""
    if item_id > ID_MAX:
        return None
    try:
        view = queues.item_view(queue=queue, item_id=item_id, reviewer=request.user)
    except NotFound:
        return None
    history = list(queues.reviewer_history(queue=queue, reviewer=request.user))
    ids = [review.item_id for review in history]
    # Back: the item finished before this one (or the latest, from a new item).
    here = ids.index(item_id) if item_id in ids else -1
    back = ids[here + 1] if here + 1 < len(ids) else None
    pairwise = queue.kind == ReviewQueue.Kind.PAIRWISE
    verdict = None
    if view.comparison is not None:
        winner = view.comparison.winner_id
        verdict = (
            view.comparison.outcome
            if winner is None
            else ("a" if winner == view.item.request_id else "b")
        )
    return {
        "queue": queue,
        "view": view,
        "item": view.item,
        "result": view.item.request,
        "pairwise": pairwise,
        # Blind pairwise queues show who answered only once the caller has given a verdict.
        "hide_names": pairwise and queue.blind and view.comparison is None,
        "sides": [
            {"key": "a" if side.pk == view.item.request_id else "b", "result": side}
            for side in view.sides
        ]
        if pairwise
        else [],
        "verdict": verdict,
        "back": back,
        "pending": view.review is not None and view.review.state == ItemReview.State.PENDING,
        "mine_done": sum(1 for review in history if review.state == ItemReview.State.DONE),
    }


def _initial(view: queues.ItemView) -> dict:
    judgment = view.judgment
    initial: dict = {"star": view.starred}
    if judgment is not None:
        initial |= {
            "quality": "" if judgment.quality is None else str(judgment.quality),
            "category": judgment.category,
            "tags": ", ".join(tag.name for tag in judgment.tags.all()),
            "notes": judgment.notes,
        }
    return initial


def _render_item(request, context: dict, form: ItemForm, *, status: int = 200) -> HttpResponse:
    return render(request, "viewer/queue_item.html", {**context, "form": form}, status=status)


@staff_member_required
@require_GET
@_queue_page()
def queue_item(request: HttpRequest, queue: ReviewQueue, item_id: int) -> HttpResponse:
    context = _item_context(request, queue, item_id)
    if context is None:
        return _not_found(request, "item in this queue", queue)
    view = context["view"]
    form = ItemForm(queue=queue, judgment=view.judgment, initial=_initial(view))
    return _render_item(request, context, form)


@staff_member_required
@require_POST
@_queue_page()
def queue_item_submit(request: HttpRequest, queue: ReviewQueue, item_id: int) -> HttpResponse:
    context = _item_context(request, queue, item_id)
    if context is None:
        return _not_found(request, "item in this queue", queue)
    form = ItemForm(request.POST, queue=queue, judgment=context["view"].judgment)
    if form.is_valid():
        try:
            queues.item_submit(
                queue=queue, item_id=item_id, reviewer=request.user, submission=form.submission()
            )
        except ApplicationError as error:
            form.add_application_error(error)
            return _render_item(request, context, form, status=error.status)
        return _next_or_detail(request, queue)
    return _render_item(request, context, form, status=400)


def _next_or_detail(request: HttpRequest, queue: ReviewQueue) -> HttpResponse:
    try:
        return _next(queue, request.user)
    except Conflict as error:
        # The work is saved; only finding the next item failed. The queue page says so.
        return _detail(request, queue, error=error.message, status=error.status)


@staff_member_required
@require_POST
@_queue_page()
def queue_item_skip(request: HttpRequest, queue: ReviewQueue, item_id: int) -> HttpResponse:
    if item_id > ID_MAX:
        return _not_found(request, "item in this queue", queue)
    try:
        queues.item_skip(queue=queue, item_id=item_id, reviewer=request.user)
    except ApplicationError as error:
        # The page is built only to show the refusal (an item already submitted).
        context = _item_context(request, queue, item_id)
        if context is None:
            return _not_found(request, "item in this queue", queue)
        view = context["view"]
        form = ItemForm(queue=queue, judgment=view.judgment, initial=_initial(view))
        return _render_item(request, {**context, "error": error.message}, form, status=error.status)
    return _next_or_detail(request, queue)
