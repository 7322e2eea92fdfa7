"""The review queue pages' forms: creating a queue, and one reviewer's work on one item.

Both only parse what the browser sent. The rules live in curation.queues (a
queue's spec) and curation.apis.JudgmentInputSerializer (a judgment's values),
which the curation API uses too, so the pages and the API refuse the same input
with the same words.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from core.exceptions import ApplicationError
from core.text import clipped, quoted
from curation import queues, selectors
from curation.apis import JudgmentInputSerializer
from curation.models import CategoryChoices, Judgment, ReviewQueue

# A results-table query string is short; this leaves room for every filter at once.
FILTER_MAX_LENGTH = 4_000
# The longest reservation queue_create allows, in minutes (24 hours).
RESERVATION_MAX_MINUTES = 24 * 60
# Errors quote the reviewer's input only this far (a library's message may echo it whole).
ERROR_MAX_CHARS = 200

# queue_create's `param` names the spec's field; these are the form's names for them.
SPEC_PARAMS = {"reservation_seconds": "reservation_minutes"}


def reviewer_choices():
    """Who can be assigned to a queue: active staff people, and agents (active
    accounts holding a reviewer token that still works)."""
    has_token = Q(reviewer_tokens__isnull=False, reviewer_tokens__revoked_at__isnull=True)
    return (
        get_user_model()
        .objects.filter(Q(is_staff=True) | has_token, is_active=True)
        .distinct()
        .order_by("username")
    )


class ReviewerChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_username() if obj.is_staff else f"{obj.get_username()} (agent)"


def filter_query(text: str) -> str:
    """The filter as a query string; a pasted results URL works too (its query is kept)."""
    text = text.strip()
    return text.split("?", 1)[1] if "?" in text else text


def _batch_choices() -> list[tuple[str, str]]:
    return [(b.public_id, f"{b.public_id} {b.model}") for b in selectors.compare_choices()]


class QueueForm(forms.Form):
    """/queues/new. Each field's name is the QueueSpec's (queue_create's `param`),
    so a refusal lands beside the field it is about."""

    name = forms.CharField(max_length=ReviewQueue.NAME_MAX_LENGTH)
    kind = forms.ChoiceField(
        choices=ReviewQueue.Kind.choices,
        initial=ReviewQueue.Kind.RESULTS,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "A queue's kind is results or pairwise."},
    )
    filter = forms.CharField(
        required=False,
        max_length=FILTER_MAX_LENGTH,
        help_text="The results table's query string (batch=…&quality_min=…); empty: every "
        "completed result.",
    )
    batches = forms.MultipleChoiceField(
        required=False,
        choices=_batch_choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose the two batches from the list."},
    )
    reviewers = ReviewerChoiceField(
        queryset=reviewer_choices(),
        required=False,
        error_messages={
            "invalid_choice": "Choose reviewers from the list.",
            "invalid_pk_value": "Choose reviewers from the list.",
        },
    )
    reviewers_per_item = forms.IntegerField(
        min_value=1, max_value=ReviewQueue.MAX_REVIEWERS_PER_ITEM, initial=1
    )
    instructions = forms.CharField(
        required=False,
        max_length=ReviewQueue.INSTRUCTIONS_MAX_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    fields = forms.MultipleChoiceField(
        required=False,
        choices=ReviewQueue.Field.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose fields from the list."},
    )
    blind = forms.BooleanField(required=False, initial=True)
    reservation_minutes = forms.IntegerField(
        min_value=1, max_value=RESERVATION_MAX_MINUTES, initial=10
    )

    def clean_filter(self) -> str:
        return filter_query(self.cleaned_data["filter"])

    def spec(self) -> queues.QueueSpec:
        data = self.cleaned_data
        return queues.QueueSpec(
            name=data["name"],
            kind=data["kind"],
            filter_query=data["filter"],
            compare_batches=tuple(data["batches"]),
            reviewers=tuple(data["reviewers"]),
            reviewers_per_item=data["reviewers_per_item"],
            instructions=data["instructions"],
            fields=tuple(data["fields"]),
            blind=data["blind"],
            reservation_seconds=data["reservation_minutes"] * 60,
        )

    def add_application_error(self, error: ApplicationError) -> None:
        """Put a service's refusal beside the field its `param` names."""
        param = SPEC_PARAMS.get(error.param or "", error.param)
        self.add_error(param if param in self.fields else None, clipped(error.message))


VERDICTS = {
    "a": ("winner", "a"),
    "b": ("winner", "b"),
    "tie": ("tie", None),
    "both_bad": ("both_bad", None),
}


class ItemForm(forms.Form):
    """A reviewer's work on one queue item. Only the queue's fields are kept;
    tags come as one comma-separated text. The judgment's values are checked
    by JudgmentInputSerializer, as the curation API checks them."""

    star = forms.BooleanField(required=False)
    quality = forms.CharField(required=False)
    category = forms.CharField(required=False)
    tags = forms.CharField(required=False)
    notes = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    # Pairwise: the button pressed. "a" and "b" are the sides' identities in the
    # item, not their places on the screen.
    verdict = forms.CharField(required=False)

    def __init__(self, *args, queue: ReviewQueue, judgment: Judgment | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue = queue
        self.judgment = judgment
        wanted = set(queue.fields)
        if queue.kind == ReviewQueue.Kind.PAIRWISE:
            wanted.add("verdict")
        for name in list(self.fields):
            if name not in wanted:
                del self.fields[name]

    def clean(self):
        data = super().clean()
        if "verdict" in self.fields:
            verdict = data.get("verdict") or ""
            if verdict not in VERDICTS:
                self.add_error(
                    "verdict",
                    "Choose a verdict: left or right is better, a tie, or both bad.",
                )
        payload = self._judgment_payload(data)
        category = payload.get("category", "")
        if category and category not in CategoryChoices.values:
            # Said here, not by the serializer, whose message repeats the value whole.
            self.add_error(
                "category",
                f"Unknown category {quoted(category)}; choose "
                f"{', '.join(CategoryChoices.values)}, or none.",
            )
            del payload["category"]
        serializer = JudgmentInputSerializer(data=payload)
        if not serializer.is_valid():
            for field, errors in serializer.errors.items():
                for message in _messages(errors):
                    self.add_error(field if field in self.fields else None, message)
        else:
            data["changes"] = self._changes(serializer.validated_data)
        return data

    def _judgment_payload(self, data: dict) -> dict:
        payload: dict = {}
        if "quality" in self.fields:
            quality = (data.get("quality") or "").strip()
            payload["quality"] = quality or None
        if "category" in self.fields:
            payload["category"] = data.get("category") or ""
        if "tags" in self.fields:
            text = data.get("tags") or ""
            payload["tags"] = [tag.strip() for tag in text.split(",") if tag.strip()]
        if "notes" in self.fields:
            payload["notes"] = data.get("notes") or ""
        return payload

    def _changes(self, values: dict) -> dict:
        """The values to record: a blank field is "not given", unless the
        reviewer's judgment holds a value there (then blank clears it)."""
        changes = {}
        for field, value in values.items():
            if value not in (None, "", []):
                changes[field] = value
            elif self.judgment is not None:
                before = (
                    list(self.judgment.tags.all())
                    if field == "tags"
                    else getattr(self.judgment, field)
                )
                if before not in (None, "", []):
                    changes[field] = value
        return changes

    def submission(self) -> queues.Submission:
        data = self.cleaned_data
        outcome, winner = VERDICTS.get(data.get("verdict") or "", (None, None))
        return queues.Submission(
            star=data["star"] if "star" in self.fields else None,
            changes=data.get("changes") or None,
            outcome=outcome,
            winner=winner,
        )

    def add_application_error(self, error: ApplicationError) -> None:
        param = error.param or ""
        if param in ("outcome", "winner"):
            param = "verdict"
        self.add_error(param if param in self.fields else None, clipped(error.message))


def _messages(errors) -> list[str]:
    """A serializer's errors for one field as flat messages, each of bounded length
    (a list field's errors come per index: "Tag 3: …")."""
    if isinstance(errors, dict):
        return [
            f"Tag {int(index) + 1}: {message}" if str(index).isdigit() else message
            for index, nested in errors.items()
            for message in _messages(nested)
        ]
    if isinstance(errors, list):
        return [message for each in errors for message in _messages(each)]
    return [clipped(str(errors), ERROR_MAX_CHARS)]
