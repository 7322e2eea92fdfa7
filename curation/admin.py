from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from import_export.admin import ExportActionMixin
from import_export.formats.base_formats import CSV

from batches.admin import ReadOnlyAdmin
from batches.models import Request
from curation import services as curation_services
from curation.models import Annotation, CategoryChoices, Preference, Star, Tag
from exports.services import export_record_content
from exports.tabular import ResultResource


@admin.register(Star)
class StarAdmin(admin.ModelAdmin):
    list_display = ["request", "user", "created_at"]
    list_filter = ["user", "created_at"]
    search_fields = ["request__custom_id", "request__batch__public_id", "user__username"]
    list_select_related = ["request", "user"]
    raw_id_fields = ["request"]
    readonly_fields = ["user", "created_at"]

    def has_add_permission(self, request):
        # Stars are made in the viewer (or by the result actions), attributed to the
        # logged-in reviewer; a form with a free "user" field would allow forgery.
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TagInline(admin.TabularInline):
    model = Annotation.tags.through
    extra = 0
    raw_id_fields = ["tag"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["request", "quality", "category", "tag_list", "edited_by", "edited_at"]
    list_filter = ["category", "edited_by", "tags"]
    search_fields = ["request__custom_id", "notes", "tags__name"]
    list_select_related = ["request", "edited_by"]
    raw_id_fields = ["request"]
    readonly_fields = ["edited_by", "edited_at"]
    exclude = ["tags"]
    inlines = [TagInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="Tags")
    def tag_list(self, annotation: Annotation) -> str:
        return ", ".join(tag.name for tag in annotation.tags.all())

    def save_model(self, request, obj, form, change):
        # Attribution comes from the session, as in the viewer.
        obj.edited_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = ["chosen", "rejected", "user", "created_at"]
    list_filter = ["user", "created_at"]
    search_fields = ["chosen__custom_id", "user__username"]
    list_select_related = ["chosen", "rejected", "user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ResultActionForm(ActionForm):
    """Extra inputs beside the action menu, for the category and tag actions."""

    category = forms.ChoiceField(
        choices=[("", "category…"), *CategoryChoices.choices], required=False
    )
    tag = forms.CharField(
        max_length=50, required=False, widget=forms.TextInput({"placeholder": "tag"})
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
        if not tag or len(tag) > 50:
            self.message_user(
                request, "Type a tag (1-50 characters) beside the action.", messages.ERROR
            )
            return
        count = curation_services.annotations_add_tag_bulk(
            requests=queryset, user=request.user, tag_name=tag
        )
        self.message_user(request, f"Tagged {count} result(s) with {tag}.", messages.SUCCESS)

    def get_queryset(self, request):
        queryset = super().get_queryset(request).prefetch_related("stars__user")
        # Bodies and responses are large; the change list never loads them.
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("body", "response")
        return queryset
