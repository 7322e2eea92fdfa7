from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from batches.admin import ReadOnlyAdmin
from exports.models import Export


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    list_display = ["pk", "format", "user", "origin", "rows", "skipped", "created_at", "downloads"]
    list_filter = ["format", "origin", "user"]
    search_fields = ["directory", "user__username"]
    list_select_related = ["user"]
    exclude = ["results"]
    readonly_fields = ["downloads"]

    @admin.display(description="Files")
    def downloads(self, export: Export):
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a> <code>{}</code>',
            (
                (reverse("export-file", args=[export.pk, f["name"]]), f["name"], f["sha256"][:12])
                for f in export.files
            ),
        )
