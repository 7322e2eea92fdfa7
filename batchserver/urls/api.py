"""Port 4080: the OpenAI-compatible API. Bearer keys only; no sessions, no admin."""

from django.urls import path
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView

from batches import apis, health
from batches.errors import bad_request_view, json_error_view

urlpatterns = [
    path(
        "v1/files",
        apis.method_dispatch(GET=apis.FileListApi.as_view(), POST=apis.FileCreateApi.as_view()),
    ),
    path(
        "v1/files/<str:file_id>",
        apis.method_dispatch(
            GET=apis.FileRetrieveApi.as_view(), DELETE=apis.FileDeleteApi.as_view()
        ),
    ),
    path("v1/files/<str:file_id>/content", apis.FileContentApi.as_view()),
    path(
        "v1/batches",
        apis.method_dispatch(GET=apis.BatchListApi.as_view(), POST=apis.BatchCreateApi.as_view()),
    ),
    path("v1/batches/<str:batch_id>", apis.BatchRetrieveApi.as_view()),
    path("v1/batches/<str:batch_id>/cancel", apis.BatchCancelApi.as_view()),
    path("v1/batches/<str:batch_id>/results", apis.BatchResultsApi.as_view()),
    path("v1/models", apis.ModelListApi.as_view()),
    path("v1/models/<path:model>", apis.ModelRetrieveApi.as_view()),
    path(
        "v1/openapi.json",
        SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer], permission_classes=[]),
    ),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", health.metrics),
]

# Every error on port 4080 is JSON in OpenAI's envelope, whatever answers it:
# DRF views (batches.errors.openai_exception_handler), these handlers (Django's
# own refusals: a bad Host header, a body too big to read, an unknown URL, a
# crash), and CSRF_FAILURE_VIEW. batchserver.wsgi.api resolves with this
# URLconf from the first middleware on, so these handlers answer for it too.
handler400 = bad_request_view
handler403 = json_error_view(403, "Forbidden.", "permission_denied")
handler404 = json_error_view(404, "Unknown URL; the API lives under /v1/.", "unknown_url")
handler500 = json_error_view(500, "The server had an error while processing your request.", None)
