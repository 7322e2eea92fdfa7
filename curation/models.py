"""What reviewers add to results: stars, annotations, tags and preferences.

Every row names the staff user who made it; the browser never says who that is.
"""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from batches.models import Request


class Star(models.Model):
    """A gold star: this reviewer holds this result up as a good example."""

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="stars")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "user"], name="curation_star_once_per_user"),
        ]
        indexes = [
            # The "starred by <user>" filter and the per-reviewer counts.
            models.Index(fields=["user", "request"], name="curation_star_user"),
        ]

    def __str__(self) -> str:
        return f"★ {self.user} on {self.request}"


class Tag(models.Model):
    NAME_MAX_LENGTH = 50

    name = models.CharField(
        max_length=NAME_MAX_LENGTH, help_text="Free text, reused across results."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="curation_tag_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class CategoryChoices(models.TextChoices):
    EXCELLENT = "excellent", "Excellent"
    GOOD = "good", "Good"
    NEEDS_IMPROVEMENT = "needs_improvement", "Needs Improvement"


class Annotation(models.Model):
    """A result's shared metadata; the last editor and time are kept."""

    Category = CategoryChoices

    NOTES_MAX_LENGTH = 10_000
    MAX_TAGS = 20

    request = models.OneToOneField(
        Request, on_delete=models.CASCADE, primary_key=True, related_name="annotation"
    )
    quality = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="0-100."
    )
    category = models.CharField(max_length=20, choices=CategoryChoices.choices, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="annotations")
    notes = models.TextField(blank=True, max_length=NOTES_MAX_LENGTH)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    edited_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quality__isnull=True) | Q(quality__lte=100),
                name="curation_annotation_quality_range",
            ),
            models.CheckConstraint(
                condition=Q(category="") | Q(category__in=CategoryChoices.values),
                name="curation_annotation_category_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["quality"], name="curation_annotation_quality"),
            models.Index(fields=["category"], name="curation_annotation_category"),
        ]

    def __str__(self) -> str:
        return f"{self.request}: {self.quality if self.quality is not None else 'unscored'}"


class Preference(models.Model):
    """One reviewer preferred `chosen` to `rejected`: two responses to the same input."""

    chosen = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="preferred_over")
    rejected = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="rejected_for")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["chosen", "rejected", "user"], name="curation_preference_unique"
            ),
            models.CheckConstraint(
                condition=~Q(chosen=models.F("rejected")), name="curation_preference_distinct"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.chosen} over {self.rejected}"


def annotation_of(result: Request) -> Annotation | None:
    """The result's annotation, or None when it has none yet."""
    try:
        return result.annotation
    except ObjectDoesNotExist:
        return None


class JudgmentRole(models.TextChoices):
    REVIEW = "review", "Review"
    ADJUDICATION = "adjudication", "Adjudication"


class Judgment(models.Model):
    """One reviewer's quality, category, tags and notes on one result.

    A result's Annotation, the shared "current" metadata, is derived from its
    judgments (curation.judgments.annotation_derive); an adjudication, when
    there is one, settles it.
    """

    Role = JudgmentRole

    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="judgments")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments"
    )
    role = models.CharField(
        max_length=12, choices=JudgmentRole.choices, default=JudgmentRole.REVIEW
    )
    quality = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="0-100."
    )
    category = models.CharField(max_length=20, choices=CategoryChoices.choices, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="judgments")
    notes = models.TextField(blank=True, max_length=Annotation.NOTES_MAX_LENGTH)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer", "role"], name="curation_judgment_once_per_role"
            ),
            models.CheckConstraint(
                condition=Q(quality__isnull=True) | Q(quality__lte=100),
                name="curation_judgment_quality_range",
            ),
            models.CheckConstraint(
                condition=Q(category="") | Q(category__in=CategoryChoices.values),
                name="curation_judgment_category_valid",
            ),
            models.CheckConstraint(
                condition=Q(role__in=JudgmentRole.values), name="curation_judgment_role_valid"
            ),
        ]
        indexes = [
            # Agreement and the "two reviewers scored >= N" export filter.
            models.Index(fields=["reviewer", "request"], name="curation_judgment_reviewer"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.request} ({self.role})"


class JudgmentEdit(models.Model):
    """Who changed what in a judgment, and when: {field: [before, after]}."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="edits")
    editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgment_edits"
    )
    changes = models.JSONField(help_text="Each changed field: [before, after].")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.editor} edited {self.judgment_id} at {self.at:%Y-%m-%d %H:%M}"


class ComparisonOutcome(models.TextChoices):
    WINNER = "winner", "Winner"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Comparison(models.Model):
    """One reviewer's verdict on responses to the same input: a winner, a tie,
    or all of them bad. A winner also writes Preference rows (chosen over each
    other candidate) and stars it, as the compare page always has."""

    Outcome = ComparisonOutcome

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons"
    )
    # The candidates' ids, sorted and comma-joined: one verdict per reviewer and set.
    candidates_key = models.CharField(max_length=500)
    candidates = models.ManyToManyField(Request, related_name="comparisons")
    custom_id = models.CharField(max_length=Request.CUSTOM_ID_MAX_LENGTH)
    outcome = models.CharField(max_length=10, choices=ComparisonOutcome.choices)
    winner = models.ForeignKey(
        Request, on_delete=models.CASCADE, null=True, blank=True, related_name="won_comparisons"
    )
    blind = models.BooleanField(
        default=False, help_text="Model and batch names were hidden until the verdict."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "candidates_key"], name="curation_comparison_once_per_user"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=ComparisonOutcome.values),
                name="curation_comparison_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(outcome="winner", winner__isnull=False)
                | (~Q(outcome="winner") & Q(winner__isnull=True)),
                name="curation_comparison_winner_iff_outcome",
            ),
        ]
        indexes = [models.Index(fields=["candidates_key"], name="curation_comparison_key")]

    def __str__(self) -> str:
        return f"{self.user}: {self.outcome} on {self.custom_id}"

    @staticmethod
    def key(ids) -> str:
        return ",".join(str(i) for i in sorted(set(ids)))


class QueueKind(models.TextChoices):
    RESULTS = "results", "Results"
    PAIRWISE = "pairwise", "Pairwise comparison"


class QueueField(models.TextChoices):
    STAR = "star", "Star"
    QUALITY = "quality", "Quality"
    CATEGORY = "category", "Category"
    TAGS = "tags", "Tags"
    NOTES = "notes", "Notes"


class ReviewQueue(models.Model):
    """A named selection of results (or of pairs of responses to one input) that
    reviewers, people and agents, work through item by item."""

    Kind = QueueKind
    Field = QueueField

    NAME_MAX_LENGTH = 100
    INSTRUCTIONS_MAX_LENGTH = 20_000
    MAX_REVIEWERS_PER_ITEM = 5
    MAX_ITEMS = 200_000

    name = models.CharField(max_length=NAME_MAX_LENGTH, unique=True)
    kind = models.CharField(max_length=10, choices=QueueKind.choices, default=QueueKind.RESULTS)
    filter_query = models.TextField(
        blank=True,
        help_text="The results table's filter, as its query string (batch=…&quality_min=…).",
    )
    compare_batches = models.ManyToManyField(
        "batches.Batch",
        blank=True,
        related_name="+",
        help_text="Pairwise queues: the two batches whose answers to each input are compared.",
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="review_queues",
        help_text="Who may work the queue, people and agents. Nobody listed: every reviewer.",
    )
    reviewers_per_item = models.PositiveSmallIntegerField(
        default=1, help_text="How many reviewers each item needs (2-3 gives overlap)."
    )
    instructions = models.TextField(
        blank=True,
        max_length=INSTRUCTIONS_MAX_LENGTH,
        help_text="Markdown, shown beside each item.",
    )
    fields = models.JSONField(default=list, help_text="What reviewers fill in.")
    blind = models.BooleanField(
        default=True, help_text="Pairwise queues: hide model and batch names until the verdict."
    )
    reservation_seconds = models.PositiveIntegerField(
        default=600, help_text="How long a claimed item stays reserved for its reviewer."
    )
    item_count = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=QueueKind.values), name="curation_reviewqueue_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(reviewers_per_item__gte=1, reviewers_per_item__lte=5),
                name="curation_reviewqueue_reviewers_per_item_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class QueueItem(models.Model):
    """One item of a queue: a result, or (pairwise) two responses to one input."""

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(
        Request, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Reviewers still needed: reviewers_per_item less those done or holding a
    # live reservation. Claims take a slot with a conditional UPDATE.
    open_slots = models.PositiveSmallIntegerField()
    done_count = models.PositiveSmallIntegerField(default=0)
    # Set when a skip or a lapsed reservation gives a slot back: such an item
    # may sit behind the frontier of reviewers who passed it while it was full.
    reopened = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "position"], name="curation_queueitem_position"
            ),
        ]
        indexes = [
            # Claim-next: the first item of a queue, in order, that still needs someone.
            models.Index(
                fields=["queue", "position"],
                name="curation_queueitem_open",
                condition=Q(open_slots__gt=0),
            ),
            # Claim-next, first: the open items that were given back (few).
            models.Index(
                fields=["queue", "position"],
                name="curation_queueitem_reopened",
                condition=Q(open_slots__gt=0, reopened=True),
            ),
            # The queue's complete count: items with every reviewer they need.
            models.Index(fields=["queue", "done_count"], name="curation_queueitem_done"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} #{self.position}"


class ItemReviewState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"


class ItemReview(models.Model):
    """One reviewer's work on one queue item: reserved (pending), done or skipped."""

    State = ItemReviewState

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="reviews")
    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="item_reviews"
    )
    state = models.CharField(
        max_length=8, choices=ItemReviewState.choices, default=ItemReviewState.PENDING
    )
    position = models.PositiveIntegerField(
        null=True, blank=True, help_text="The item's position, when claim-next served it."
    )
    reserved_until = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="curation_itemreview_once"),
            models.CheckConstraint(
                condition=Q(state__in=ItemReviewState.values),
                name="curation_itemreview_state_valid",
            ),
        ]
        indexes = [
            # A reviewer's live reservation, progress and history in a queue.
            models.Index(
                fields=["queue", "reviewer", "state"], name="curation_itemreview_reviewer"
            ),
            # A reviewer's frontier: the furthest item they reached in a queue.
            models.Index(
                fields=["queue", "reviewer", "position"], name="curation_itemreview_frontier"
            ),
            # Releasing reservations that ran out.
            models.Index(
                fields=["queue", "reserved_until"],
                name="curation_itemreview_expiry",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.item}: {self.state}"


class ReviewerToken(models.Model):
    """A bearer token for the curation API on the viewer's port, for one reviewer
    (a person's script or an agent). Only its SHA-256 is stored; it is shown once.
    Not an API key: /v1 does not take it, and the viewer does not take API keys."""

    PREFIX = "rt-bs-"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="The token's last characters.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Revoked tokens stop working."
    )

    def __str__(self) -> str:
        return f"{self.name or 'token'} …{self.hint} ({self.user})"
