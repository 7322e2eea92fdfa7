"""The curation API on the viewer's port, for reviewer tokens only (agents and scripts).

Mounted at /api/v1/ by batchserver.urls.viewer. Path ids are read as text and
checked by the views, so that a word, a negative number or an id beyond 2**63
is a 404 in the error envelope; so is any path not listed here.
"""

from django.urls import include, path, re_path
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView

from curation import curation_api as api
from exports import curation_api as export_api

# The schema describes these patterns as the viewer serves them (under /api/v1/);
# filled in below, once `urlpatterns` exists.
_schema_patterns: list = []

urlpatterns = [
    path("queues", api.QueueListApi.as_view(), name="curation-api-queues"),
    path("queues/<str:queue_id>", api.QueueRetrieveApi.as_view(), name="curation-api-queue"),
    path("queues/<str:queue_id>/claim", api.QueueClaimApi.as_view(), name="curation-api-claim"),
    path(
        "queues/<str:queue_id>/items/<str:item_id>",
        api.ItemRetrieveApi.as_view(),
        name="curation-api-item",
    ),
    path(
        "queues/<str:queue_id>/items/<str:item_id>/submit",
        api.ItemSubmitApi.as_view(),
        name="curation-api-submit",
    ),
    path(
        "queues/<str:queue_id>/items/<str:item_id>/skip",
        api.ItemSkipApi.as_view(),
        name="curation-api-skip",
    ),
    path("results", api.ResultListApi.as_view(), name="curation-api-results"),
    path("results/<str:result_id>", api.ResultRetrieveApi.as_view(), name="curation-api-result"),
    path("exports", export_api.ExportCreateApi.as_view(), name="curation-api-exports"),
    path(
        "exports/<str:export_id>",
        export_api.ExportRetrieveApi.as_view(),
        name="curation-api-export",
    ),
    path(
        "exports/<str:export_id>/download",
        export_api.ExportDownloadApi.as_view(),
        name="curation-api-export-download",
    ),
    path(
        "openapi.json",
        SpectacularAPIView.as_view(
            patterns=_schema_patterns,
            renderer_classes=[OpenApiJsonRenderer],
            authentication_classes=[],
            permission_classes=[],
            custom_settings={
                "TITLE": "Batch Server curation API",
                "DESCRIPTION": (
                    "Review queues and results for reviewer tokens, on the viewer's port "
                    "(`Authorization: Bearer rt-bs-…`; create one with "
                    "`manage.py create_reviewer_token`). Everything is recorded as the "
                    "token's user. Every error has one shape: "
                    '`{"error": {"message", "type", "param", "code"}}`.'
                ),
            },
        ),
        name="curation-api-schema",
    ),
    re_path(r"^", api.unknown_url),
]

_schema_patterns.append(path("api/v1/", include(urlpatterns)))
