from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html

from batches import services
from batches.errors import ApiError
from batches.models import ApiKey, Batch, Chunk, File


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the server writes: browsable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "owner__username", "hint"]
    list_select_related = ["owner"]
    readonly_fields = ["key_hash", "hint", "created_at", "last_used_at", "webhook_secret"]
    # A webhook URL typed without a scheme is https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = [
        "owner",
        "name",
        "hint",
        "created_at",
        "last_used_at",
        "revoked_at",
        "webhook_url",
        "webhook_secret",
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "webhook_url" in form.changed_data:
            services.api_key_set_webhook(api_key=obj, url=obj.webhook_url)

    actions = ["revoke"]

    def has_add_permission(self, request):
        # The raw key must be shown exactly once: `manage.py create_api_key`.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = services.api_keys_revoke(queryset)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(File)
class FileAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "filename",
        "purpose",
        "bytes",
        "owner",
        "created_at",
        "deleted_at",
    ]
    list_filter = ["purpose", "created_at"]
    search_fields = ["public_id", "filename", "owner__username"]
    list_select_related = ["owner"]


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "size", "attempts", "leased_by", "finished_at"]
    list_filter = ["status"]
    search_fields = ["batch__public_id", "leased_by"]
    list_select_related = ["batch"]


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["index", "first_line", "last_line", "status", "attempts", "leased_by", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "status", "progress", "model", "owner", "created_at"]
    list_filter = ["status", "model", "endpoint", "created_at"]
    search_fields = ["public_id", "owner__username", "input_file__public_id"]
    list_select_related = ["owner"]
    inlines = [ChunkInline]
    actions = ["cancel"]

    @admin.display(description="Progress")
    def progress(self, batch: Batch):
        done = batch.completed_requests + batch.failed_requests
        percent = 100 * done // batch.total_requests if batch.total_requests else 0
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} ({} failed)',
            percent,
            done,
            batch.total_requests,
            batch.failed_requests,
        )

    @admin.action(description="Cancel selected batches")
    def cancel(self, request, queryset):
        cancelled = refused = 0
        for batch in queryset:
            try:
                services.batch_cancel(batch=batch)
                cancelled += 1
            except ApiError:
                refused += 1
        self.message_user(request, f"Cancelling {cancelled} batch(es); {refused} already finished.")
