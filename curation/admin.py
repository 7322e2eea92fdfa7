"""The admin for curated rows. They are kept forever, so none can be deleted
here: each admin denies it (and Django's delete page then refuses anything,
such as a user, whose deletion would cascade into them)."""

from django.contrib import admin

from curation.models import Annotation, Preference, Star, Tag


class KeptForeverAdmin(admin.ModelAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Star)
class StarAdmin(KeptForeverAdmin):
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
class AnnotationAdmin(KeptForeverAdmin):
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
class TagAdmin(KeptForeverAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Preference)
class PreferenceAdmin(KeptForeverAdmin):
    list_display = ["chosen", "rejected", "user", "created_at"]
    list_filter = ["user", "created_at"]
    search_fields = ["chosen__custom_id", "user__username"]
    list_select_related = ["chosen", "rejected", "user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
