"""The admin for the batch tables, and for results (Request rows) with the
reviewers' bulk actions.

Admin modules are wiring, like URLconfs: the results admin calls curation's
services and records its CSV download as an export, so it imports those apps,
while batches' models, services and pipeline never do.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db import models
from django.utils.html import format_html
from import_export.admin import ExportActionMixin
from import_export.formats.base_formats import CSV

from batches import services
from batches.models import (
    ApiKey,
    Batch,
    Chunk,
    File,
    Heartbeat,
    IdempotencyKey,
    Request,
    WebhookDelivery,
    excerpt,
)
from batches.webhooks import loggable_url
from core.exceptions import ApplicationError
from curation import services as curation_services
from curation.models import CategoryChoices, Tag
from exports.services import export_record_content
from exports.tabular import ResultResource


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the server writes: browsable, never edited or deleted by hand.

    Deleting is refused too, as django-q2's admins do for their tables: a batch,
    a result or a file cascades into the curated rows that refer to it (stars,
    annotations, preferences, export links), which are kept forever; the
    retention purge is what removes uncurated data. Django's delete page also
    refuses any deletion (a user's, a key's) that would cascade into these.
    """

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """What an operator looks at when a client says it was never told."""

    list_display = [
        "event",
        "batch",
        "destination",
        "attempts",
        "delivered_at",
        "next_attempt_at",
        "error_excerpt",
    ]
    list_filter = ["event", ("delivered_at", admin.EmptyFieldListFilter)]
    search_fields = ["batch__public_id"]  # not the URL: a search could probe its password
    list_select_related = ["batch"]
    # The URL as loggable_url shows it: the stored one may hold a password.
    fields = readonly_fields = (
        "event",
        "batch",
        "api_key",
        "destination",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )

    @admin.display(description="URL")
    def destination(self, delivery: WebhookDelivery) -> str:
        return loggable_url(delivery.url)  # never a password or a query-string token

    @admin.display(description="Last error")
    def error_excerpt(self, delivery: WebhookDelivery) -> str:
        return excerpt(delivery.last_error)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "beat_at", "details"]
    search_fields = ["name"]
    ordering = ["-beat_at"]


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "endpoint", "owner", "status_code", "created_at"]
    list_filter = ["endpoint", "created_at"]
    search_fields = ["key", "owner__username"]
    list_select_related = ["owner"]
    exclude = ["response"]  # a whole object, as first answered; the API shows it


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
            except ApplicationError:
                refused += 1
        self.message_user(request, f"Cancelling {cancelled} batch(es); {refused} already finished.")


class ResultActionForm(ActionForm):
    """Extra inputs beside the action menu, for the category and tag actions."""

    category = forms.ChoiceField(
        choices=[("", "category…"), *CategoryChoices.choices], required=False
    )
    tag = forms.CharField(
        max_length=Tag.NAME_MAX_LENGTH,
        required=False,
        widget=forms.TextInput({"placeholder": "tag"}),
    )


@admin.register(Request)
class RequestAdmin(ExportActionMixin, ReadOnlyAdmin):
    list_display = [
        "custom_id",
        "batch",
        "line",
        "status",
        "status_code",
        "completion_tokens",
        "starred_by",
        "quality",
    ]
    list_filter = ["status", "batch__model", "annotation__category"]
    search_fields = ["custom_id", "batch__public_id"]
    list_select_related = ["batch", "annotation"]
    action_form = ResultActionForm
    actions = ["star", "unstar", "set_category", "add_tag"]
    # "Export selected results" (django-import-export): the CSV export's columns,
    # formula-safe, and recorded like every other export.
    resource_classes = [ResultResource]
    export_formats = [CSV]

    def has_export_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        content = data if isinstance(data, bytes) else data.encode()
        export_record_content(
            content=content,
            filename="results.csv",
            result_ids=list(queryset.values_list("pk", flat=True)),
            params={"selected": queryset.count()},
            user=request.user,
            origin="admin",
        )
        return data

    @admin.display(description="Stars")
    def starred_by(self, result: Request) -> str:
        return ", ".join(star.user.get_username() for star in result.stars.all())

    @admin.display(description="Quality", ordering="annotation__quality")
    def quality(self, result: Request):
        annotation = getattr(result, "annotation", None)
        return annotation.quality if annotation else None

    @admin.action(description="Gold-star selected results (as me)")
    def star(self, request, queryset):
        count = curation_services.stars_set_bulk(requests=queryset, user=request.user, starred=True)
        self.message_user(request, f"Starred {count} result(s).", messages.SUCCESS)

    @admin.action(description="Remove my star from selected results")
    def unstar(self, request, queryset):
        count = curation_services.stars_set_bulk(
            requests=queryset, user=request.user, starred=False
        )
        self.message_user(request, f"Removed {count} star(s).", messages.SUCCESS)

    @admin.action(description="Set the category of selected results")
    def set_category(self, request, queryset):
        category = request.POST.get("category", "")
        if category not in CategoryChoices.values:
            self.message_user(request, "Choose a category beside the action.", messages.ERROR)
            return
        count = curation_services.annotations_set_category_bulk(
            requests=queryset, user=request.user, category=category
        )
        self.message_user(request, f"Set the category of {count} result(s).", messages.SUCCESS)

    @admin.action(description="Add a tag to selected results")
    def add_tag(self, request, queryset):
        tag = request.POST.get("tag", "").strip()
        if not tag or len(tag) > Tag.NAME_MAX_LENGTH:
            self.message_user(
                request,
                f"Type a tag (1-{Tag.NAME_MAX_LENGTH} characters) beside the action.",
                messages.ERROR,
            )
            return
        try:
            count = curation_services.annotations_add_tag_bulk(
                requests=queryset, user=request.user, tag_name=tag
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        self.message_user(request, f"Tagged {count} result(s) with {tag}.", messages.SUCCESS)

    def get_queryset(self, request):
        queryset = super().get_queryset(request).prefetch_related("stars__user")
        # Bodies and responses are large; the change list never loads them.
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("body", "response")
        return queryset
