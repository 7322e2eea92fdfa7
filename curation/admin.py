"""The admin for curated rows. They are kept forever, so none can be deleted
here: each admin denies it (and Django's delete page then refuses anything,
such as a user, whose deletion would cascade into them)."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse

from core.exceptions import ApplicationError
from curation import queues, tokens
from curation.models import (
    Annotation,
    Comparison,
    ItemReview,
    Judgment,
    JudgmentEdit,
    Preference,
    ReviewerToken,
    ReviewQueue,
    Star,
    Tag,
)


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


@admin.register(Annotation)
class AnnotationAdmin(KeptForeverAdmin):
    """The shared metadata, derived from the judgments (curation.judgments):
    edited through a reviewer's judgment in the viewer, never here."""

    list_display = ["request", "quality", "category", "tag_list", "edited_by", "edited_at"]
    list_filter = ["category", "edited_by", "tags"]
    search_fields = ["request__custom_id", "notes", "tags__name"]
    list_select_related = ["request", "edited_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="Tags")
    def tag_list(self, annotation: Annotation) -> str:
        return ", ".join(tag.name for tag in annotation.tags.all())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JudgmentEditInline(admin.TabularInline):
    model = JudgmentEdit
    extra = 0
    fields = ["at", "editor", "changes"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(KeptForeverAdmin):
    """Each reviewer's own record, with its history. Attributed, so read-only here."""

    list_display = ["request", "reviewer", "role", "quality", "category", "updated_at"]
    list_filter = ["role", "category", "reviewer"]
    search_fields = ["request__custom_id", "reviewer__username", "notes"]
    list_select_related = ["request", "reviewer"]
    inlines = [JudgmentEditInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


@admin.register(Comparison)
class ComparisonAdmin(KeptForeverAdmin):
    list_display = ["custom_id", "user", "outcome", "winner", "blind", "created_at"]
    list_filter = ["outcome", "blind", "user"]
    search_fields = ["custom_id", "user__username"]
    list_select_related = ["user", "winner"]
    exclude = ["candidates"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReviewQueueForm(forms.ModelForm):
    """Creating a queue writes its items: the service checks the spec first,
    so a refusal is a form error, not a half-made queue."""

    fields = forms.MultipleChoiceField(
        choices=ReviewQueue.Field.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Results queues: what reviewers fill in. Pairwise queues: notes, if any.",
    )
    compare_batch_ids = forms.CharField(
        required=False,
        label="Compare batches",
        help_text="Pairwise queues: the two batch ids, separated by a space.",
    )

    class Meta:
        model = ReviewQueue
        fields = [
            "name",
            "kind",
            "filter_query",
            "reviewers",
            "reviewers_per_item",
            "instructions",
            "blind",
            "reservation_seconds",
        ]

    def spec(self) -> queues.QueueSpec:
        data = self.cleaned_data
        return queues.QueueSpec(
            name=data.get("name") or "",
            kind=data.get("kind") or ReviewQueue.Kind.RESULTS,
            filter_query=data.get("filter_query") or "",
            compare_batches=tuple((data.get("compare_batch_ids") or "").split()),
            reviewers=tuple(data.get("reviewers") or ()),
            reviewers_per_item=data.get("reviewers_per_item") or 1,
            instructions=data.get("instructions") or "",
            fields=tuple(data.get("fields") or ()),
            blind=bool(data.get("blind")),
            reservation_seconds=data.get("reservation_seconds") or 600,
        )


class ReviewQueueChangeForm(forms.ModelForm):
    class Meta:
        model = ReviewQueue
        fields = ["name", "reviewers", "instructions", "reservation_seconds"]


@admin.register(ReviewQueue)
class ReviewQueueAdmin(KeptForeverAdmin):
    list_display = ["name", "kind", "item_count", "reviewers_per_item", "created_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    list_select_related = ["created_by"]
    filter_horizontal = ["reviewers"]
    # Changing the overlap or the selection of a queue in use would break its
    # counts: those are fixed at creation.
    readonly_fields = [
        "kind",
        "filter_query",
        "reviewers_per_item",
        "fields",
        "blind",
        "item_count",
        "created_by",
        "created_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ReviewQueueChangeForm if obj else ReviewQueueForm
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            base = form

            class CheckedForm(base):  # type: ignore[valid-type,misc]
                def clean(self):
                    data = super().clean()
                    if not self.errors:
                        try:
                            queues.queue_check(spec=self.spec(), created_by=request.user)
                        except ApplicationError as error:
                            field = error.param if error.param in self.fields else None
                            self.add_error(field, error.message)
                    return data

            return CheckedForm
        return form

    def get_fields(self, request, obj=None):
        if obj:
            return [
                "name",
                "reviewers",
                "instructions",
                "reservation_seconds",
                *self.readonly_fields,
            ]
        return [
            *ReviewQueueForm.Meta.fields[:2],
            "compare_batch_ids",
            *ReviewQueueForm.Meta.fields[2:],
            "fields",
        ]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "reviewers":
            kwargs["queryset"] = (
                get_user_model().objects.filter(is_active=True).order_by("username")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = queues.queue_create(spec=form.spec(), created_by=request.user)
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        if change:  # a new queue's reviewers were set by queue_create
            super().save_related(request, form, formsets, change)


@admin.register(ItemReview)
class ItemReviewAdmin(KeptForeverAdmin):
    list_display = ["item", "reviewer", "state", "reserved_until", "finished_at"]
    list_filter = ["state", "queue", "reviewer"]
    list_select_related = ["item__queue", "reviewer"]
    raw_id_fields = ["item"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReviewerTokenForm(forms.ModelForm):
    class Meta:
        model = ReviewerToken
        fields = ["user", "name"]


@admin.register(ReviewerToken)
class ReviewerTokenAdmin(admin.ModelAdmin):
    """Tokens for the curation API. Adding one shows the token once; only its
    hash is kept. Revoking is an action (the row stays, attributed work too)."""

    list_display = ["__str__", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "hint"]
    list_select_related = ["user"]
    readonly_fields = ["hint", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ReviewerTokenForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["user", "name"] if obj is None else ["user", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return ["user", *self.readonly_fields] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = tokens.token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        request._reviewer_token = raw  # shown by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(
            request,
            "admin/curation/reviewertoken/created.html",
            {
                **self.admin_site.each_context(request),
                "token": obj,
                "raw": request._reviewer_token,
                "opts": self.opts,
                "title": "Reviewer token created",
            },
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = tokens.tokens_revoke(queryset)
        self.message_user(request, f"Revoked {count} token(s).")
