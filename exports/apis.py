"""The export panel's JSON endpoints (port 8001), with the curation API's rules:
session login, staff only, CSRF checked on POST, errors in the viewer's JSON
shape (an expired session is a 403 the page's script can show, not a redirect
to the login page).
"""

from django.http import HttpResponseRedirect, QueryDict
from django.urls import reverse
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from curation.apis import ViewerApi
from exports import services

# Form fields that are not export options, and must not be recorded as such.
_NOT_OPTIONS = ("csrfmiddlewaretoken",)


class ExportCountApi(ViewerApi):
    """GET /api/exports/count?format=&filter=: how many rows the export would hold
    (before per-row checks). Counting records nothing."""

    def get(self, request):
        rows = services.export_count(params=request.query_params, user=request.user)
        return Response({"rows": rows})


class ExportCreateApi(ViewerApi):
    """POST /api/export-gold-star: make and record an export.

    A POST, never a GET: exports are kept forever and keep their results from
    retention, so a link followed by a logged-in browser must not make one.
    The panel's script sends JSON and gets the export (201) with its
    `download_url`; a plain form post is sent on to the download (303).
    """

    def post(self, request):
        export = services.export_create(
            params=_options(request.data), user=request.user, origin="viewer"
        )
        download_url = reverse("export-download", args=[export.pk])
        if not isinstance(request.data, QueryDict):
            body = {
                "id": export.pk,
                "format": export.format,
                "rows": export.rows,
                "skipped": export.skipped,
                "files": export.files,
                "download_url": download_url,
            }
            return Response(body, status=status.HTTP_201_CREATED)
        return HttpResponseRedirect(download_url, status=status.HTTP_303_SEE_OTHER)


def _options(data) -> QueryDict | dict:
    """The export's options and filter: a form's fields, or a JSON object of scalars."""
    if isinstance(data, QueryDict):
        options = data.copy()
        for name in _NOT_OPTIONS:
            options.pop(name, None)
        return options
    if isinstance(data, dict) and all(
        value is None or isinstance(value, str | int | float) for value in data.values()
    ):
        return {name: "" if value is None else str(value) for name, value in data.items()}
    raise ValidationError("Send the export's options as a JSON object of strings and numbers.")
