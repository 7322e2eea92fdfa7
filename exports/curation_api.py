"""The curation API's export operations (/api/v1/exports on the viewer's port):
make an export as the export panel does, read it, download it.

Reviewer tokens only (curation.curation_api.CurationApi). An export is the
token's user's: it is recorded as theirs, and another user's export is not
found through the API.
"""

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from core.exceptions import ApplicationError, NotFound
from core.text import clipped, quoted
from curation.curation_api import CurationApi, errors, filter_param_names, path_id
from exports import services
from exports.filters import ExportFilter
from exports.models import Export, ExportFormat
from exports.views import download_response

EXPORT_ID = OpenApiParameter(
    "export_id", int, OpenApiParameter.PATH, description="The export's id."
)


def _options(data, user) -> dict:
    """The export's options and filter: a JSON object of strings, numbers and
    nulls, whose every key the panel's form or filter knows."""
    if not isinstance(data, dict) or not all(
        value is None or isinstance(value, str | int | float) for value in data.values()
    ):
        raise ApplicationError(
            "Send the export's options as a JSON object of strings and numbers.",
            code="invalid_value",
        )
    known = set(services.ExportOptionsForm.base_fields) | filter_param_names(
        ExportFilter(None, user=user)
    )
    unknown = sorted(set(data) - known)
    if unknown:
        raise ApplicationError(
            f"Unknown export option(s): {', '.join(quoted(k) for k in unknown[:5])}. "
            f"Known: {', '.join(sorted(known))}.",
            param=clipped(unknown[0], 100),
        )
    return {name: "" if value is None else str(value) for name, value in data.items()}


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    format = serializers.ChoiceField(choices=ExportFormat.values)
    params = serializers.JSONField(help_text="The filter and options, as recorded.")
    rows = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Rows left out as invalid for the format.")
    files = serializers.JSONField(help_text="[{name, rows, bytes, sha256}]")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="user.get_username", allow_null=True)
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, export) -> str:
        return reverse("curation-api-export-download", args=[export.pk])


class ExportCreateApi(CurationApi):
    @extend_schema_serializer(component_name="ExportCreate")
    class InputSerializer(serializers.Serializer):
        """For the schema: the panel's options; the results filter's parameters
        (starred, quality_min, batch, …) are accepted beside them."""

        format = serializers.ChoiceField(choices=ExportFormat.values)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
        token_budget = serializers.IntegerField(required=False, min_value=1)
        split = serializers.FloatField(required=False, min_value=0.01, max_value=0.5)
        seed = serializers.IntegerField(required=False)
        target_model = serializers.CharField(required=False)
        filter = serializers.ChoiceField(choices=["all", "quality_high", "recent"], required=False)
        starred = serializers.ChoiceField(choices=["yes", "me", "any"], required=False)

    @extend_schema(
        operation_id="createExport",
        summary="Write an export, as the export panel does, recorded as the caller's",
        request=InputSerializer,
        responses={201: ExportOutputSerializer, **errors(400)},
    )
    def post(self, request):
        export = services.export_create(
            params=_options(request.data, request.user),
            user=request.user,
            # The viewer's port; the export's user says it came through a token.
            origin=Export.Origin.VIEWER,
        )
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_201_CREATED)


def _export_for(user, export_id: str) -> Export:
    export = (
        Export.objects.select_related("user")
        .filter(pk=path_id(export_id, "export", "export_id"), user=user)
        .first()
    )
    if export is None:
        raise NotFound("export", export_id, param="export_id")
    return export


class ExportRetrieveApi(CurationApi):
    @extend_schema(
        operation_id="retrieveExport",
        summary="One of the caller's exports",
        parameters=[EXPORT_ID],
        responses={200: ExportOutputSerializer, **errors(404)},
    )
    def get(self, request, export_id: str):
        return Response(ExportOutputSerializer(_export_for(request.user, export_id)).data)


class ExportDownloadApi(CurationApi):
    @extend_schema(
        operation_id="downloadExport",
        summary="The export's file; a split export (train + validation) as one zip",
        parameters=[EXPORT_ID],
        responses={
            200: OpenApiResponse(
                {"type": "string", "format": "binary"}, description="JSONL, CSV or zip."
            ),
            **errors(404),
        },
    )
    def get(self, request, export_id: str):
        export = _export_for(request.user, export_id)
        try:
            return download_response(export)
        except FileNotFoundError:
            raise ApplicationError(
                "This export's files are missing.", code="not_found", status=404
            ) from None
