"""The agreement pages (port 8001, staff): agreement per queue and reviewer pair,
the disagreements, and settling one (a form POST with the CSRF token)."""

from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from batches.models import Request
from core.exceptions import ApplicationError
from curation import adjudication, agreement
from curation.apis import ID_MAX
from curation.models import Annotation, CategoryChoices, ReviewQueue, Tag

NEXT_MAX_LENGTH = 2000
_QUALITY_ERRORS = {
    "min_value": "Quality is a score from 0 to 100.",
    "max_value": "Quality is a score from 0 to 100.",
    "invalid": "Quality is a whole number from 0 to 100.",
}
_CATEGORY_CHOICES = [("", "(none)"), *CategoryChoices.choices]
# Never the submitted value: it may be anything, of any length.
_CATEGORY_ERRORS = {"invalid_choice": f"Category is one of {', '.join(CategoryChoices.values)}."}


class DisagreementOptions(forms.Form):
    quality_gap = forms.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        label="Quality gap ≥",
        error_messages={
            "min_value": "The quality gap is 1 to 100 points.",
            "max_value": "The quality gap is 1 to 100 points.",
            "invalid": "The quality gap is a whole number of points, 1 to 100.",
        },
    )
    include_settled = forms.BooleanField(required=False, label="Include settled")
    after = forms.IntegerField(
        min_value=0,
        max_value=ID_MAX,
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid": "The page cursor is an item position."},
    )


class SettleForm(forms.Form):
    queue = forms.IntegerField(min_value=1, max_value=ID_MAX, required=False)
    next = forms.CharField(max_length=NEXT_MAX_LENGTH, required=False)
    quality = forms.IntegerField(
        min_value=0, max_value=100, required=False, error_messages=_QUALITY_ERRORS
    )
    category = forms.ChoiceField(
        choices=_CATEGORY_CHOICES, required=False, error_messages=_CATEGORY_ERRORS
    )
    tags = forms.CharField(
        required=False,
        max_length=Annotation.MAX_TAGS * (Tag.NAME_MAX_LENGTH + 2),
        error_messages={"max_length": f"At most {Annotation.MAX_TAGS} tags per result."},
    )
    notes = forms.CharField(
        required=False,
        strip=False,
        max_length=Annotation.NOTES_MAX_LENGTH,
        error_messages={
            "max_length": f"Notes are at most {Annotation.NOTES_MAX_LENGTH:,} characters."
        },
    )

    def clean_tags(self) -> list[str]:
        names = [n.strip() for n in self.cleaned_data["tags"].split(",") if n.strip()]
        names = list(dict.fromkeys(names))
        if len(names) > Annotation.MAX_TAGS:
            raise forms.ValidationError(f"At most {Annotation.MAX_TAGS} tags per result.")
        if any(len(name) > Tag.NAME_MAX_LENGTH for name in names):
            raise forms.ValidationError(f"A tag is at most {Tag.NAME_MAX_LENGTH} characters.")
        return names


def _get(model, pk: int):
    # A larger number cannot name a row (and the database would refuse it).
    found = model.objects.filter(pk=pk).first() if pk <= ID_MAX else None
    if found is None:
        raise Http404(f"No such {model._meta.verbose_name}")
    return found


@staff_member_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "viewer/agreement.html", {"overview": agreement.agreement_overview()})


@staff_member_required
@require_GET
def queue_agreement(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _get(ReviewQueue, pk)
    return render(
        request, "viewer/agreement.html", {"agreement": agreement.queue_agreement(queue=queue)}
    )


@staff_member_required
@require_GET
def disagreements(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _get(ReviewQueue, pk)
    return _disagreements_page(request, queue, request.GET)


def _disagreements_page(
    request: HttpRequest,
    queue: ReviewQueue,
    params: QueryDict,
    *,
    failed: SettleForm | None = None,
    failed_result: int | None = None,
) -> HttpResponse:
    """The disagreements page; with `failed`, a settle form that did not go
    through, shown again at its item with its errors (status 400)."""
    options = DisagreementOptions(params)
    context: dict = {
        "queue": queue,
        "options": options,
        "failed": failed,
        # Echoed into the form as typed, but never more than a number's length.
        "gap_value": str(params.get("quality_gap", agreement.DEFAULT_QUALITY_GAP))[:5],
        "include_settled": params.get("include_settled", "") not in ("", "0", "false"),
    }
    if not options.is_valid():
        return render(request, "viewer/disagreements.html", context, status=400)
    data = options.cleaned_data
    page = agreement.disagreements(
        queue=queue,
        quality_gap=data["quality_gap"] or agreement.DEFAULT_QUALITY_GAP,
        include_settled=data["include_settled"],
        after=data["after"],
    )
    query = QueryDict(mutable=True)
    query["quality_gap"] = str(page.quality_gap)
    if page.include_settled:
        query["include_settled"] = "1"
    here = request.path if failed is None else reverse("agreement-disagreements", args=[queue.pk])
    current = query.copy()
    if page.after is not None:
        current["after"] = str(page.after)
    context |= {
        "page": page,
        "rows": [
            (row, _settle_values(row, failed if row.result.pk == failed_result else None))
            for row in page.rows
        ],
        "query": query.urlencode(),
        "back": f"{here}?{current.urlencode()}",
        "failed_result": failed_result,
    }
    return render(
        request, "viewer/disagreements.html", context, status=400 if failed is not None else 200
    )


def _settle_values(row: agreement.Disagreement, failed: SettleForm | None) -> dict:
    """What an item's settle form shows: the derived metadata, or what was
    posted and refused (cut to the fields' limits: nothing unbounded is echoed)."""
    if failed is not None:
        data = failed.data
        return {
            "quality": str(data.get("quality", ""))[:5],
            "category": str(data.get("category", ""))[:30],
            "tags": str(data.get("tags", ""))[: Annotation.MAX_TAGS * (Tag.NAME_MAX_LENGTH + 2)],
            "notes": str(data.get("notes", ""))[: Annotation.NOTES_MAX_LENGTH],
            "errors": [e for errors in failed.errors.values() for e in errors],
        }
    annotation = row.annotation
    if annotation is None:
        return {"quality": "", "category": "", "tags": "", "notes": "", "errors": []}
    return {
        "quality": "" if annotation.quality is None else str(annotation.quality),
        "category": annotation.category,
        "tags": ", ".join(tag.name for tag in annotation.tags.all()),
        "notes": annotation.notes,
        "errors": [],
    }


def _safe_next(request: HttpRequest, target: str) -> str | None:
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


@staff_member_required
@require_POST
def settle(request: HttpRequest, pk: int) -> HttpResponse:
    """The adjudicator's decision on a result, then back to the list it came from."""
    result = _get(Request, pk)
    form = SettleForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            adjudication.result_settle(
                request=result,
                adjudicator=request.user,
                quality=data["quality"],
                category=data["category"],
                tags=data["tags"],
                notes=data["notes"],
            )
        except ApplicationError as error:
            form.add_error(error.param if error.param in form.fields else None, error.message)
        else:
            messages.success(request, f"Settled {result.custom_id[:80]}.")
            queue_id = data["queue"]
            default = (
                reverse("agreement-disagreements", args=[queue_id])
                if queue_id and ReviewQueue.objects.filter(pk=queue_id).exists()
                else reverse("agreement")
            )
            return redirect(_safe_next(request, data["next"]) or default)
    queue_id = form.cleaned_data.get("queue") if hasattr(form, "cleaned_data") else None
    queue = ReviewQueue.objects.filter(pk=queue_id).first() if queue_id else None
    if queue is None:
        return render(
            request,
            "viewer/agreement.html",
            {
                "overview": agreement.agreement_overview(),
                "failed": form,
                "failed_result": result,
            },
            status=400,
        )
    back = _safe_next(request, str(request.POST.get("next", ""))[:NEXT_MAX_LENGTH]) or ""
    params = QueryDict(urlsplit(back).query)
    return _disagreements_page(request, queue, params, failed=form, failed_result=result.pk)
