"""Port 8001: the curation viewer and the admin, for staff logins only."""

from django.contrib import admin
from django.urls import include, path

from batches import health
from curation import apis, views
from exports import apis as export_apis
from exports import views as exports

admin.site.site_header = "Batch Server"
admin.site.site_title = "Batch Server"
admin.site.index_title = "Batches and curation"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("results/", views.results, name="results"),
    path("results/<int:pk>/", views.review, name="review"),
    path("compare/", views.compare, name="compare"),
    path("api/gold-star", apis.GoldStarApi.as_view(), name="api-gold-star"),
    path(
        "api/results/<int:pk>/annotation",
        apis.AnnotationUpdateApi.as_view(),
        name="api-annotation",
    ),
    path("api/compare/winner", apis.WinnerPickApi.as_view(), name="api-winner"),
    path("api/compare/verdict", apis.CompareVerdictApi.as_view(), name="api-compare-verdict"),
    path("api/results/bulk-star", apis.BulkStarApi.as_view(), name="api-bulk-star"),
    path("api/results/bulk-tag", apis.BulkTagApi.as_view(), name="api-bulk-tag"),
    path("api/tags", apis.TagSuggestionsApi.as_view(), name="api-tags"),
    path("api/batches/progress", apis.BatchProgressApi.as_view(), name="api-batch-progress"),
    path("exports/", exports.panel, name="exports"),
    path("exports/<int:pk>/files/<str:name>", exports.export_file, name="export-file"),
    path("exports/<int:pk>/download", exports.export_download, name="export-download"),
    path("api/exports/count", export_apis.ExportCountApi.as_view(), name="api-export-count"),
    path(
        "api/export-gold-star", export_apis.ExportCreateApi.as_view(), name="api-export-gold-star"
    ),
    path("queues/", include("batchserver.urls.queues")),
    path("agreement/", include("batchserver.urls.agreement")),
    # The curation API for reviewer tokens (agents, scripts): no sessions there.
    path("api/v1/", include("batchserver.urls.curation_api")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
]
