"""The export panel (port 8001): choose a format and a filter, see the count,
download; past exports stay listed and downloadable. The panel's JSON endpoints
(count, create) are in exports/apis.py."""

import tempfile
import zipfile

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from batches.engines import served_models
from exports import services
from exports.filters import ExportFilter
from exports.models import Export, ExportFormat


@staff_member_required
def panel(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "viewer/exports.html",
        {
            "filter": ExportFilter(request.GET or None, user=request.user),
            "formats": ExportFormat.choices,
            "models": served_models(),
            "exports": Export.objects.select_related("user").order_by("-pk")[:50],
        },
    )


@staff_member_required
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    """An export's file to download, named for its format and time; a split export
    (train + validation) as one zip with its manifest. Made by POST /api/export-gold-star."""
    export = get_object_or_404(Export, pk=pk)
    try:
        return download_response(export)
    except FileNotFoundError:
        raise Http404("This export's files are missing") from None


@staff_member_required
def export_file(request: HttpRequest, pk: int, name: str) -> FileResponse:
    export = get_object_or_404(Export, pk=pk)
    try:
        path = services.export_path(export, name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=name)
    except FileNotFoundError:
        raise Http404("No such file in this export") from None


def download_response(export: Export) -> FileResponse:
    """The export's file; a split export (train + validation) as one zip."""
    stem = f"gold_star_{export.format}_{export.created_at:%Y%m%d-%H%M%S}"
    if len(export.files) == 1:
        name = export.files[0]["name"]
        suffix = name.rsplit(".", 1)[-1]
        path = services.export_path(export, name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{stem}.{suffix}")
    bundle = tempfile.TemporaryFile()  # noqa: SIM115 - deleted when the response closes it
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in [f["name"] for f in export.files] + [services.MANIFEST]:
            archive.write(services.export_path(export, name), arcname=name)
    bundle.seek(0)
    return FileResponse(bundle, as_attachment=True, filename=f"{stem}.zip")
