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
