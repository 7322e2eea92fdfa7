"""Port 8001: the curation viewer and the admin, for staff logins only."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Batch Server"
admin.site.site_title = "Batch Server"
admin.site.index_title = "Batches and curation"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
