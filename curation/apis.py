"""JSON endpoints behind the viewer's buttons: session login, staff only, CSRF checked.

API keys do not work here (and sessions do not work on /v1).
"""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from batches.models import Request
from batches.parsers import StrictJSONParser
from batches.serializers import StrictCharField
from curation import judgments, selectors, services
from curation.errors import viewer_exception_handler
from curation.models import Annotation, CategoryChoices, Comparison, Judgment, Tag
from curation.templatetags.curation import metadata_label

# Result ids are BigAutoField values: a larger number cannot name a row, and the
# database would refuse it with an error rather than find nothing.
ID_MAX = 2**63 - 1


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, **kwargs)


class ViewerApi(APIView):
    # SessionAuthentication enforces CSRF for logged-in users.
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAdminUser]
    # JSON from the viewer's script (orjson, nesting bounded: a deep body is a 400);
    # urlencoded form posts from its pages (the export form). No multipart: no uploads here.
    parser_classes = [StrictJSONParser, FormParser]

    def get_exception_handler(self):
        return viewer_exception_handler


def _stars(result: Request) -> list[dict]:
    return [
        {"user": star.user.get_username(), "at": star.created_at.isoformat()}
        for star in result.stars.select_related("user").order_by("created_at")
    ]


class GoldStarApi(ViewerApi):
    """POST /api/gold-star: star (or unstar) a result as the logged-in reviewer.

    Any `starred_by` in the body is ignored: the star is always the session's user's.
    """

    class InputSerializer(serializers.Serializer):
        result_id = id_field()
        starred = serializers.BooleanField(default=True)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = get_object_or_404(Request, pk=serializer.validated_data["result_id"])
        starred = services.star_set(
            request=result, user=request.user, starred=serializer.validated_data["starred"]
        )
        return Response({"result_id": result.pk, "starred": starred, "stars": _stars(result)})


class AnnotationOutputSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    edited_by = serializers.CharField(source="edited_by.get_username", default=None)

    class Meta:
        model = Annotation
        fields = ["quality", "category", "tags", "notes", "edited_by", "edited_at"]


class JudgmentOutputSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    reviewer = serializers.CharField(source="reviewer.get_username")

    class Meta:
        model = Judgment
        fields = ["reviewer", "role", "quality", "category", "tags", "notes", "updated_at"]


class JudgmentInputSerializer(serializers.Serializer):
    """A reviewer's metadata for one result: any of quality, category, tags and
    notes (the review page, queues, the curation API)."""

    quality = serializers.IntegerField(
        min_value=0,
        max_value=100,
        allow_null=True,
        required=False,
        error_messages={
            "min_value": "Quality is a score from 0 to 100.",
            "max_value": "Quality is a score from 0 to 100.",
            "invalid": "Quality is a whole number from 0 to 100.",
        },
    )
    category = serializers.ChoiceField(
        choices=[("", "None"), *CategoryChoices.choices], required=False
    )
    tags = serializers.ListField(
        child=StrictCharField(max_length=Tag.NAME_MAX_LENGTH, allow_blank=True),
        max_length=Annotation.MAX_TAGS,
        required=False,
        error_messages={"max_length": f"At most {Annotation.MAX_TAGS} tags per result."},
    )
    notes = StrictCharField(
        max_length=Annotation.NOTES_MAX_LENGTH, allow_blank=True, required=False
    )


class AnnotationUpdateApi(ViewerApi):
    InputSerializer = JudgmentInputSerializer

    def post(self, request, pk: int):
        """Change the fields sent; the others stay as they are."""
        result = get_object_or_404(Request, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        annotation = services.annotation_update(
            request=result, user=request.user, changes=serializer.validated_data
        )
        judgment = judgments.judgment_of(request=result, reviewer=request.user)
        return Response(
            {
                **AnnotationOutputSerializer(annotation).data,
                "judgment": JudgmentOutputSerializer(judgment).data,
            }
        )


class WinnerPickApi(ViewerApi):
    """POST /api/compare/winner: the reviewer's best response to one input."""

    class InputSerializer(serializers.Serializer):
        winner = id_field()
        candidates = serializers.ListField(child=id_field(), min_length=2, max_length=20)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        winner = services.winner_pick(
            winner_id=serializer.validated_data["winner"],
            candidate_ids=serializer.validated_data["candidates"],
            user=request.user,
        )
        return Response({"winner": winner.pk, "stars": _stars(winner)})


class TagSuggestionsApi(ViewerApi):
    def get(self, request):
        prefix = request.query_params.get("q", "")[:50]
        return Response({"tags": selectors.tag_suggestions(prefix=prefix)})


class BatchProgressApi(ViewerApi):
    def get(self, request):
        public_ids = request.query_params.getlist("id")[:50]
        return Response({"batches": selectors.batch_progress(public_ids=public_ids)})


# --- Bulk actions from the results table ------------------------------------------


def result_ids_field() -> serializers.ListField:
    return serializers.ListField(
        child=id_field(),
        min_length=1,
        max_length=selectors.BULK_MAX,
        error_messages={
            "max_length": f"At most {selectors.BULK_MAX} results at a time.",
            "min_length": "Select at least one result.",
        },
    )


class BulkStarApi(ViewerApi):
    """POST /api/results/bulk-star: star (or unstar) many results as the
    logged-in reviewer. Unknown ids: a 400 naming them, and nothing changes."""

    class InputSerializer(serializers.Serializer):
        result_ids = result_ids_field()
        starred = serializers.BooleanField()

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data["result_ids"]
        changed = services.stars_set_bulk(
            requests=selectors.results_by_ids(ids=ids),
            user=request.user,
            starred=serializer.validated_data["starred"],
        )
        return Response(
            {"changed": changed, "results": selectors.result_states(ids=ids, user=request.user)}
        )


class BulkTagApi(ViewerApi):
    """POST /api/results/bulk-tag: add one tag to many results, in the
    logged-in reviewer's judgments (the shared metadata is derived again)."""

    class InputSerializer(serializers.Serializer):
        result_ids = result_ids_field()
        tag = StrictCharField(max_length=Tag.NAME_MAX_LENGTH)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data["result_ids"]
        changed = services.annotations_add_tag_bulk(
            requests=selectors.results_by_ids(ids=ids),
            user=request.user,
            tag_name=serializer.validated_data["tag"],
        )
        return Response(
            {"changed": changed, "results": selectors.result_states(ids=ids, user=request.user)}
        )


# --- Compare verdicts -------------------------------------------------------------


class CompareVerdictApi(ViewerApi):
    """POST /api/compare/verdict: the reviewer's verdict on responses to one
    input: a winner among them, a tie, or all of them bad. It replaces their
    earlier verdict on the same responses, and its answer names each response's
    model and batch (a blind page reveals them then)."""

    class InputSerializer(serializers.Serializer):
        candidates = serializers.ListField(child=id_field(), min_length=2, max_length=20)
        outcome = serializers.ChoiceField(choices=Comparison.Outcome.choices)
        winner = id_field(allow_null=True, required=False, default=None)
        blind = serializers.BooleanField(default=False)

        def validate(self, data):
            if data["outcome"] == Comparison.Outcome.WINNER:
                if data["winner"] is None:
                    raise serializers.ValidationError({"winner": "A winner verdict names it."})
                if data["winner"] not in data["candidates"]:
                    raise serializers.ValidationError(
                        {"winner": "The winner must be one of the candidates."}
                    )
            elif data["winner"] is not None:
                raise serializers.ValidationError(
                    {"winner": "A tie or both-bad verdict names no winner."}
                )
            return data

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        comparison = services.comparison_record(
            candidate_ids=data["candidates"],
            user=request.user,
            outcome=data["outcome"],
            winner_id=data["winner"],
            blind=data["blind"],
        )
        ids = sorted(set(data["candidates"]))
        states = {
            state["result_id"]: state
            for state in selectors.result_states(ids=ids, user=request.user)
        }
        candidates = [
            {
                "result_id": result.pk,
                "model": result.batch.model,
                "batch": result.batch.public_id,
                "label": metadata_label(result.batch.metadata),
                "review_url": reverse("review", args=[result.pk]),
                "starred": states[result.pk]["starred"],
                "stars": states[result.pk]["stars"],
            }
            for result in Request.objects.filter(pk__in=ids).select_related("batch").order_by("pk")
        ]
        return Response(
            {
                "outcome": comparison.outcome,
                "winner": comparison.winner_id,
                "blind": comparison.blind,
                "candidates": candidates,
            }
        )
