"""The curation API on the viewer's port, /api/v1/: review queues and results
for reviewer tokens (agents and scripts).

Authenticated only by `Authorization: Bearer rt-bs-…` (curation.tokens): session
cookies are not read here, so there is no CSRF to defend against, and batch API
keys open nothing. Everything is done as the token's user; a body never names
who acts. Views are thin: they parse, call curation.queues, curation.selectors
or curation.judgments, and render. Errors leave in the one envelope,
`{"error": {"message", "type", "param", "code"}}`. The export operations are in
exports/curation_api.py (exports is the layer above curation).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import QueryDict
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from batches.errors import json_error_view, openai_exception_handler
from batches.models import Request
from batches.openapi import ErrorSerializer
from batches.parsers import StrictJSONParser
from core.exceptions import ApplicationError, NotFound, error_body
from core.text import clipped, quoted
from curation import judgments, queues, selectors
from curation.apis import (
    ID_MAX,
    AnnotationOutputSerializer,
    JudgmentInputSerializer,
    JudgmentOutputSerializer,
)
from curation.models import Comparison, ItemReview, ReviewQueue, annotation_of
from curation.tokens import (
    HEADER_HINT,
    ReviewerTokenAuthentication,
    ReviewerTokenRateThrottle,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# A query parameter longer than this is refused: no filter value needs more.
MAX_PARAM_CHARS = 1_000
# Body keys a submission may carry; any other is refused, naming it, so an
# agent's typo ("qualty") is not silently dropped and nobody names a reviewer.
SUBMISSION_KEYS = ("star", "quality", "category", "tags", "notes", "outcome", "winner")


class RequestError(ApplicationError):
    code = "invalid_value"


# --- Errors and the base view ----------------------------------------------------


def curation_api_exception_handler(exc, context):
    """/v1's envelope, with the curation API's own word for a missing or bad token."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        if isinstance(exc, exceptions.NotAuthenticated):
            message = f"No reviewer token: send {HEADER_HINT}"
            code = "not_authenticated"
        else:
            message = clipped(str(exc.detail))
            code = "invalid_token"
        body = error_body(message, type="invalid_request_error", code=code)
        return Response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="curation"'})
    return openai_exception_handler(exc, context)


class CurationApi(APIView):
    """Reviewer tokens only (no session, so no CSRF), JSON bodies only, a rate per token."""

    authentication_classes = [ReviewerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ReviewerTokenRateThrottle]
    # orjson with the nesting bound: a deep body is a 400, not a 500.
    parser_classes = [StrictJSONParser]

    def get_exception_handler(self):
        return curation_api_exception_handler


class ReviewerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "curation.tokens.ReviewerTokenAuthentication"
    name = "ReviewerTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A reviewer token (rt-bs-…) from create_reviewer_token or the admin.",
        }


_ERRORS = {
    400: "Invalid request: the message, `param` and `code` say what to change.",
    401: f"Missing, malformed, unknown or revoked reviewer token (send {HEADER_HINT}).",
    403: "The token's user is not among the queue's reviewers (`not_assigned`).",
    404: "No such object (an id that is not a positive number is not found either).",
    409: "The object is not in a state that allows this (the message says why).",
    429: "Too many requests for this token; retry after `Retry-After` seconds.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error envelope under each status, plus 401 and 429, which every operation has."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERRORS[status])
        for status in sorted({401, 429, *statuses})
    }


def path_id(value: str, what: str, param: str) -> int:
    """A path id as a database id: anything else (words, negative numbers, ids
    beyond 2**63) names nothing, so it is not found, without a query."""
    if value.isascii() and value.isdigit() and 1 <= int(value) <= ID_MAX:
        return int(value)
    raise NotFound(what, value, param=param)


def _id_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, int, OpenApiParameter.PATH, description=description)


QUEUE_ID = _id_param("queue_id", "The queue's id.")
ITEM_ID = _id_param("item_id", "The queue item's id.")
RESULT_ID = _id_param("result_id", "The result's id.")


@csrf_exempt  # no cookies are read here, so there is no CSRF to defend against
def unknown_url(request, *args, **kwargs):
    """Any other path under /api/v1/: a 404 in the envelope, whatever the method."""
    return json_error_view(
        404,
        "Unknown URL; the curation API's paths are listed at /api/v1/openapi.json.",
        "unknown_url",
    )(request)


# --- Results -------------------------------------------------------------------


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    cached_tokens = serializers.IntegerField(allow_null=True)


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ResultRowSerializer(serializers.Serializer):
    """A row of the results table: excerpts, and the shared metadata."""

    id = serializers.IntegerField(source="pk")
    custom_id = serializers.CharField()
    batch = serializers.CharField(source="batch.public_id")
    model = serializers.CharField(source="batch.model")
    status = serializers.CharField()
    prompt = serializers.CharField(source="prompt_excerpt")
    response = serializers.CharField(source="response_excerpt")
    finish_reason = serializers.SerializerMethodField()
    cut_off = serializers.BooleanField(source="was_cut_off")
    usage = UsageSerializer(source="*")
    latency_ms = serializers.IntegerField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    annotation = serializers.SerializerMethodField()
    stars = serializers.SerializerMethodField()

    @extend_schema_field({"type": ["string", "null"]})
    def get_finish_reason(self, result) -> str | None:
        return result.finish_reason

    @extend_schema_field(AnnotationOutputSerializer(allow_null=True))
    def get_annotation(self, result):
        annotation = annotation_of(result)
        return AnnotationOutputSerializer(annotation).data if annotation else None

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_stars(self, result) -> list[str]:
        return [star.user.get_username() for star in result.stars.all()]


class ResultDetailSerializer(ResultRowSerializer):
    """A result in full: the conversation, the whole response, the parameters;
    with the caller's own judgment (context["judgment"])."""

    line = serializers.IntegerField()
    messages = MessageSerializer(source="transcript", many=True)
    response = serializers.CharField(source="response_text")
    parameters = serializers.JSONField(source="generation_parameters")
    error = serializers.JSONField(allow_null=True)
    judgment = serializers.SerializerMethodField()

    @extend_schema_field(JudgmentOutputSerializer(allow_null=True))
    def get_judgment(self, result):
        judgment = self.context.get("judgment")
        return JudgmentOutputSerializer(judgment).data if judgment else None


def filter_param_names(filters) -> set[str]:
    """The query parameters a FilterSet reads: its fields, a range's _min/_max
    and a date range's _after/_before."""
    names = set()
    for name, field in filters.form.fields.items():
        widget = field.widget
        suffixes = getattr(widget, "suffixes", None)
        if suffixes:
            names.update(widget.suffixed(name, suffix) for suffix in suffixes)
        else:
            names.add(name)
    return names


def _query_int(params: QueryDict, name: str, *, low: int, high: int, default=None) -> int | None:
    value = params.get(name)
    if value is None:
        return default
    if value.isascii() and value.isdigit() and low <= int(value) <= high:
        return int(value)
    raise RequestError(f"{name} is a whole number from {low} to {high}.", param=name)


@dataclass
class Page:
    rows: list[Request]
    newer: int | None  # cursor for the previous (newer) page: ?after=
    older: int | None  # cursor for the next (older) page: ?before=


def _page(
    queryset: QuerySet[Request], *, before: int | None, after: int | None, limit: int
) -> Page:
    """Newest first by keyset, as selectors.results_page, with the caller's page size."""
    if after is not None:
        ids = list(
            queryset.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[: limit + 1]
        )
        more = len(ids) > limit
        ids = ids[:limit][::-1]
        newer, older = (ids[0] if more else None), (ids[-1] if ids else None)
    else:
        page = queryset.filter(pk__lt=before) if before is not None else queryset
        ids = list(page.order_by("-pk").values_list("pk", flat=True)[: limit + 1])
        more = len(ids) > limit
        ids = ids[:limit]
        newer = ids[0] if before is not None and ids else None
        older = ids[-1] if more else None
    rows = list(selectors.with_curation(Request.objects.filter(pk__in=ids)).order_by("-pk"))
    return Page(rows=rows, newer=newer, older=older)


class ResultListApi(CurationApi):
    """GET /api/v1/results: the results table, with its filters as query parameters."""

    @extend_schema_serializer(component_name="ResultList")
    class OutputSerializer(serializers.Serializer):
        data = ResultRowSerializer(many=True, source="rows")
        newer = serializers.IntegerField(
            allow_null=True, help_text="Pass as `after` for the newer page; null on the first."
        )
        older = serializers.IntegerField(
            allow_null=True, help_text="Pass as `before` for the older page; null on the last."
        )

    @extend_schema(
        operation_id="listResults",
        summary="List and search results, newest first",
        parameters=[
            OpenApiParameter("before", int, description="Results older than this id."),
            OpenApiParameter("after", int, description="Results newer than this id."),
            OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}; {DEFAULT_LIMIT}."),
            OpenApiParameter("q", str, description="Search prompt and response."),
            OpenApiParameter("batch", str, description="A batch id (batch_…)."),
            OpenApiParameter("model", str),
            OpenApiParameter("status", str, enum=Request.Status.values),
            OpenApiParameter("starred", str, enum=["yes", "me", "no"]),
            OpenApiParameter("starred_by", int, description="A reviewer's user id."),
            OpenApiParameter("quality_min", int),
            OpenApiParameter("quality_max", int),
            OpenApiParameter("category", str),
            OpenApiParameter("tag", str),
            OpenApiParameter("finished_after", OpenApiTypes.DATE),
            OpenApiParameter("finished_before", OpenApiTypes.DATE),
        ],
        responses={200: OutputSerializer, **errors(400)},
    )
    def get(self, request):
        params = request.query_params
        filters = selectors.results_filter(params=params, user=request.user)
        allowed = filter_param_names(filters) | {"before", "after", "limit"}
        _check_params(params, allowed)
        before = _query_int(params, "before", low=1, high=ID_MAX)
        after = _query_int(params, "after", low=1, high=ID_MAX)
        limit = _query_int(params, "limit", low=1, high=MAX_LIMIT, default=DEFAULT_LIMIT)
        assert limit is not None
        if not filters.is_valid():
            field, messages = next(iter(filters.errors.items()))
            raise RequestError(
                clipped(f"Invalid filter {field}: {' '.join(messages)}"), param=field
            )
        page = _page(filters.qs, before=before, after=after, limit=limit)
        return Response(self.OutputSerializer(page).data)


def _check_params(params: QueryDict, allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise RequestError(
            f"Unknown query parameter(s): {', '.join(quoted(n) for n in unknown[:5])}. "
            f"Known: {', '.join(sorted(allowed))}.",
            param=clipped(unknown[0], 100),
        )
    for name in params:
        if any(len(value) > MAX_PARAM_CHARS for value in params.getlist(name)):
            raise RequestError(f"{name} is longer than {MAX_PARAM_CHARS:,} characters.", param=name)


class ResultRetrieveApi(CurationApi):
    @extend_schema(
        operation_id="retrieveResult",
        summary="A result in full, with the caller's own judgment",
        parameters=[RESULT_ID],
        responses={200: ResultDetailSerializer, **errors(404)},
    )
    def get(self, request, result_id: str):
        pk = path_id(result_id, "result", "result_id")
        result = selectors.with_curation(Request.objects.filter(pk=pk)).first()
        if result is None:
            raise NotFound("result", result_id, param="result_id")
        judgment = judgments.judgment_of(request=result, reviewer=request.user)
        return Response(ResultDetailSerializer(result, context={"judgment": judgment}).data)


# --- Queues --------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    complete = serializers.IntegerField(help_text="Items with every reviewer they need.")
    done = serializers.IntegerField(help_text="Submissions, all reviewers.")
    skipped = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Live reservations.")


class MineSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    pending = serializers.IntegerField()


@dataclass
class QueueRow:
    queue: ReviewQueue
    progress: queues.Progress
    mine: dict


def queue_row(queue: ReviewQueue, user: "User") -> QueueRow:
    progress = queues.queue_progress(queue=queue)
    mine = next(
        (r for r in progress.reviewers if r["reviewer"] == user.get_username()),
        {"done": 0, "skipped": 0, "pending": 0},
    )
    return QueueRow(queue=queue, progress=progress, mine=mine)


class QueueOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="queue.pk")
    name = serializers.CharField(source="queue.name")
    kind = serializers.ChoiceField(source="queue.kind", choices=ReviewQueue.Kind.values)
    instructions = serializers.CharField(source="queue.instructions", help_text="Markdown.")
    fields = serializers.ListField(child=serializers.CharField(), source="queue.fields")
    reviewers_per_item = serializers.IntegerField(source="queue.reviewers_per_item")
    blind = serializers.BooleanField(source="queue.blind")
    reservation_seconds = serializers.IntegerField(source="queue.reservation_seconds")
    item_count = serializers.IntegerField(source="queue.item_count")
    created_at = serializers.DateTimeField(source="queue.created_at")
    progress = ProgressSerializer()
    mine = MineSerializer(help_text="The caller's own done, skipped and pending items.")


def queue_for(user: "User", queue_id: str) -> ReviewQueue:
    """The queue, if `user` may work it: not found (404), or not assigned (403)."""
    queue = ReviewQueue.objects.filter(pk=path_id(queue_id, "queue", "queue_id")).first()
    if queue is None:
        raise NotFound("queue", queue_id, param="queue_id")
    if not queues.may_work(queue, user):
        raise queues.NotAssigned(
            f"{user.get_username()} is not among the reviewers of queue {queue.name!r}.",
            param="queue_id",
        )
    return queue


class QueueListApi(CurationApi):
    # The newest queues; more than this is not a list an agent picks from.
    LIMIT = 100

    @extend_schema_serializer(component_name="QueueList")
    class OutputSerializer(serializers.Serializer):
        data = QueueOutputSerializer(many=True)

    @extend_schema(
        operation_id="listQueues",
        summary="The queues the token's user may work, newest first, with progress",
        responses={200: OutputSerializer, **errors()},
    )
    def get(self, request):
        rows = [
            queue_row(queue, request.user)
            for queue in queues.queues_for(user=request.user)[: self.LIMIT]
        ]
        return Response(self.OutputSerializer({"data": rows}).data)


class QueueRetrieveApi(CurationApi):
    @extend_schema(
        operation_id="retrieveQueue",
        summary="One queue with its progress",
        parameters=[QUEUE_ID],
        responses={200: QueueOutputSerializer, **errors(403, 404)},
    )
    def get(self, request, queue_id: str):
        queue = queue_for(request.user, queue_id)
        return Response(QueueOutputSerializer(queue_row(queue, request.user)).data)


# --- Items ---------------------------------------------------------------------


class ItemResultSerializer(serializers.Serializer):
    """A result as a queue shows it: in full, without the others' metadata or
    stars (reviewers judge independently). In a blind queue its id, batch and
    model are null until the caller has given a verdict."""

    id = serializers.IntegerField(source="pk", allow_null=True)
    custom_id = serializers.CharField()
    batch = serializers.CharField(source="batch.public_id", allow_null=True)
    model = serializers.CharField(source="batch.model", allow_null=True)
    status = serializers.CharField()
    messages = MessageSerializer(source="transcript", many=True)
    response = serializers.CharField(source="response_text")
    finish_reason = serializers.SerializerMethodField()
    cut_off = serializers.BooleanField(source="was_cut_off")
    parameters = serializers.JSONField(source="generation_parameters")
    usage = UsageSerializer(source="*")
    latency_ms = serializers.IntegerField(allow_null=True)

    @extend_schema_field({"type": ["string", "null"]})
    def get_finish_reason(self, result) -> str | None:
        return result.finish_reason


class SideSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=["a", "b"], help_text="The `winner` to submit.")
    result = ItemResultSerializer()


class VerdictSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Comparison.Outcome.values)
    winner = serializers.ChoiceField(choices=["a", "b"], allow_null=True)
    created_at = serializers.DateTimeField()


class ItemOutputSerializer(serializers.Serializer):
    """A queue item for its reviewer (an curation.queues.ItemView; the queue in
    context["queue"])."""

    id = serializers.IntegerField(source="item.pk")
    queue = serializers.IntegerField(source="item.queue_id")
    position = serializers.IntegerField(source="item.position")
    kind = serializers.SerializerMethodField()
    state = serializers.ChoiceField(
        source="review.state", choices=ItemReview.State.values, allow_null=True
    )
    reserved_until = serializers.DateTimeField(source="review.reserved_until", allow_null=True)
    instructions = serializers.SerializerMethodField()
    # Not get_fields, which is the serializer's own.
    fields = serializers.SerializerMethodField(method_name="queue_fields")
    result = serializers.SerializerMethodField()
    sides = serializers.SerializerMethodField()
    judgment = JudgmentOutputSerializer(allow_null=True)
    starred = serializers.BooleanField()
    verdict = serializers.SerializerMethodField()

    @property
    def _queue(self) -> ReviewQueue:
        return self.context["queue"]

    @extend_schema_field({"type": "string", "enum": ReviewQueue.Kind.values})
    def get_kind(self, view) -> str:
        return self._queue.kind

    @extend_schema_field({"type": "string", "description": "Markdown."})
    def get_instructions(self, view) -> str:
        return self._queue.instructions

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def queue_fields(self, view) -> list[str]:
        return list(self._queue.fields)

    @extend_schema_field(ItemResultSerializer(allow_null=True))
    def get_result(self, view):
        if self._queue.kind != ReviewQueue.Kind.RESULTS:
            return None
        return ItemResultSerializer(view.item.request).data

    @extend_schema_field(SideSerializer(many=True, allow_null=True))
    def get_sides(self, view):
        """Pairwise: the two sides in the order this reviewer is shown them; "a"
        is always the item's first response and "b" its other, whatever the order."""
        if self._queue.kind != ReviewQueue.Kind.PAIRWISE:
            return None
        hidden = self._queue.blind and view.comparison is None
        sides = []
        for result in view.sides:
            data = ItemResultSerializer(result).data
            if hidden:
                data |= {"id": None, "batch": None, "model": None}
            side = "a" if result.pk == view.item.request_id else "b"
            sides.append({"side": side, "result": data})
        return sides

    @extend_schema_field(VerdictSerializer(allow_null=True))
    def get_verdict(self, view):
        comparison = view.comparison
        if comparison is None:
            return None
        winner = {view.item.request_id: "a", view.item.other_id: "b"}.get(comparison.winner_id)
        return {
            "outcome": comparison.outcome,
            "winner": winner,
            "created_at": comparison.created_at.isoformat(),
        }


def item_data(queue: ReviewQueue, item_id: int, user: "User") -> dict:
    view = queues.item_view(queue=queue, item_id=item_id, reviewer=user)
    return ItemOutputSerializer(view, context={"queue": queue}).data


class ClaimOutputSerializer(serializers.Serializer):
    item = ItemOutputSerializer(allow_null=True)
    message = serializers.CharField(required=False, help_text="Present when item is null.")


class QueueClaimApi(CurationApi):
    @extend_schema(
        operation_id="claimNextItem",
        summary="The next item that needs the caller, reserved for them",
        description=(
            "A caller holding a live reservation gets the same item again. The item is "
            "reserved for the queue's reservation_seconds; one that runs out goes back "
            'to the queue. {"item": null} when nothing is left for the caller.'
        ),
        request=None,
        parameters=[QUEUE_ID],
        responses={200: ClaimOutputSerializer, **errors(403, 404, 409)},
    )
    def post(self, request, queue_id: str):
        queue = queue_for(request.user, queue_id)
        review = queues.claim_next(queue=queue, reviewer=request.user)
        if review is None:
            return Response({"item": None, "message": "Nothing left for you in this queue."})
        return Response({"item": item_data(queue, review.item_id, request.user)})


class ItemRetrieveApi(CurationApi):
    @extend_schema(
        operation_id="retrieveItem",
        summary="A queue item as the caller sees it (for going back)",
        parameters=[QUEUE_ID, ITEM_ID],
        responses={200: ItemOutputSerializer, **errors(403, 404)},
    )
    def get(self, request, queue_id: str, item_id: str):
        queue = queue_for(request.user, queue_id)
        pk = path_id(item_id, "queue item", "item_id")
        return Response(item_data(queue, pk, request.user))


class ReviewOutputSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    reviewer = serializers.CharField(source="reviewer.get_username")
    state = serializers.ChoiceField(choices=ItemReview.State.values)
    finished_at = serializers.DateTimeField(allow_null=True)


class ReviewItemOutputSerializer(serializers.Serializer):
    review = ReviewOutputSerializer()
    item = ItemOutputSerializer()


class ItemSubmitApi(CurationApi):
    @extend_schema_serializer(component_name="Submission")
    class InputSerializer(JudgmentInputSerializer):
        star = serializers.BooleanField(required=False)
        outcome = serializers.ChoiceField(
            choices=Comparison.Outcome.values, required=False, help_text="Pairwise queues."
        )
        winner = serializers.ChoiceField(
            choices=["a", "b"], required=False, help_text='Pairwise, outcome "winner".'
        )

        def to_internal_value(self, data):
            if not isinstance(data, dict):
                return super().to_internal_value(data)  # DRF's "expected a dictionary"
            unknown = sorted(set(data) - set(SUBMISSION_KEYS))
            if unknown:
                raise RequestError(
                    f"Unknown field(s) in the body: {', '.join(quoted(k) for k in unknown[:5])}. "
                    f"A submission takes {', '.join(SUBMISSION_KEYS)}; it is always "
                    "recorded as the token's user.",
                    param=clipped(str(unknown[0]), 100),
                )
            # A JSON true or false: DRF would also read "yes", 1 or "on" as a star.
            if "star" in data and not isinstance(data["star"], bool):
                raise RequestError("star is true or false.", param="star")
            return super().to_internal_value(data)

    @extend_schema(
        operation_id="submitItem",
        summary="Record the caller's judgment (or verdict) on an item; it is then done",
        description=(
            "Any of the queue's fields (star, quality, category, tags, notes); a pairwise "
            'item needs an outcome ("winner" with winner "a" or "b", "tie", "both_bad"). '
            "Submitting again edits the judgment; the item is counted once."
        ),
        request=InputSerializer,
        parameters=[QUEUE_ID, ITEM_ID],
        responses={200: ReviewItemOutputSerializer, **errors(400, 403, 404)},
    )
    def post(self, request, queue_id: str, item_id: str):
        queue = queue_for(request.user, queue_id)
        pk = path_id(item_id, "queue item", "item_id")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes = {k: data[k] for k in ("quality", "category", "tags", "notes") if k in data}
        submission = queues.Submission(
            star=data.get("star"),
            changes=changes or None,
            outcome=data.get("outcome"),
            winner=data.get("winner"),
        )
        review = queues.item_submit(
            queue=queue, item_id=pk, reviewer=request.user, submission=submission
        )
        return Response(
            {
                "review": ReviewOutputSerializer(review).data,
                "item": item_data(queue, pk, request.user),
            }
        )


class ItemSkipApi(CurationApi):
    @extend_schema(
        operation_id="skipItem",
        summary="Pass on an item: it goes to someone else, never back to the caller",
        request=None,
        parameters=[QUEUE_ID, ITEM_ID],
        responses={200: ReviewItemOutputSerializer, **errors(403, 404, 409)},
    )
    def post(self, request, queue_id: str, item_id: str):
        queue = queue_for(request.user, queue_id)
        pk = path_id(item_id, "queue item", "item_id")
        review = queues.item_skip(queue=queue, item_id=pk, reviewer=request.user)
        return Response(
            {
                "review": ReviewOutputSerializer(review).data,
                "item": item_data(queue, pk, request.user),
            }
        )
