"""The export filter: the results filter, gold-starred by default, plus the seed's
presets and the agreement filters (what several reviewers' own judgments agree on)."""

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Count, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from curation.filters import ResultFilter
from curation.models import Annotation, CategoryChoices, Judgment

PRESETS = [
    ("all", "All gold-starred"),
    ("quality_high", "Quality ≥ 80"),
    ("recent", "Last 30 days"),
]
HIGH_QUALITY = 80
RECENT_DAYS = 30
AGREED_REVIEWERS = 2
AGREED_REVIEWERS_MAX = 10


class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class ExportFilter(ResultFilter):
    filter = django_filters.ChoiceFilter(
        choices=PRESETS, method="filter_preset", label="Preset", empty_label=None
    )
    starred = django_filters.ChoiceFilter(
        choices=[
            ("yes", "Gold-starred by anyone"),
            ("me", "Gold-starred by me"),
            ("any", "Every completed result"),
        ],
        method="filter_starred",
        label="Stars",
        empty_label=None,
    )

    # Agreement: counted over reviewers' own REVIEW judgments (never the derived
    # metadata, never an adjudication), so "two reviewers both scored >= 80" means
    # two people did, not that the mean is 80.
    agreed_quality_min = IntegerFilter(
        method="filter_agreed_quality",
        label="Agreed quality ≥",
        min_value=0,
        max_value=100,
        widget=forms.NumberInput(attrs={"min": 0, "max": 100, "placeholder": "80"}),
    )
    agreed_category = django_filters.ChoiceFilter(
        choices=CategoryChoices.choices,
        method="filter_agreed_category",
        label="Agreed category",
        # Never the submitted value: it may be anything, of any length.
        error_messages={"invalid_choice": f"Choose one of {', '.join(CategoryChoices.values)}."},
    )
    agreed_reviewers = IntegerFilter(
        method="filter_agreed_reviewers",
        label="…by at least (reviewers)",
        min_value=2,
        max_value=AGREED_REVIEWERS_MAX,
        widget=forms.NumberInput(
            attrs={"min": 2, "max": AGREED_REVIEWERS_MAX, "placeholder": str(AGREED_REVIEWERS)}
        ),
    )

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else QueryDict(mutable=True)
        for name, default in (("filter", "all"), ("starred", "yes")):
            if not data.get(name):
                data[name] = default
        super().__init__(data, *args, **kwargs)

    def filter_starred(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "any":
            return queryset
        return super().filter_starred(queryset, name, value)

    def filter_preset(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "quality_high":
            good = Annotation.objects.filter(quality__gte=HIGH_QUALITY).values("request_id")
            return queryset.filter(pk__in=good)
        if value == "recent":
            return queryset.filter(finished_at__gte=timezone.now() - timedelta(days=RECENT_DAYS))
        return queryset

    def _agreed_reviewers(self) -> int:
        return self.form.cleaned_data.get("agreed_reviewers") or AGREED_REVIEWERS

    def filter_agreed_reviewers(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset  # a setting of the two filters below

    def filter_agreed_quality(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        """At least `agreed_reviewers` reviewers scored the result, and every
        reviewer who scored it gave `value` or more."""
        agreed = (
            Judgment.objects.filter(role=Judgment.Role.REVIEW, quality__isnull=False)
            .values("request_id")
            .annotate(scored=Count("pk"), below=Count("pk", filter=Q(quality__lt=value)))
            .filter(scored__gte=self._agreed_reviewers(), below=0)
            .values("request_id")
        )
        return queryset.filter(pk__in=agreed)

    def filter_agreed_category(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """At least `agreed_reviewers` reviewers chose `value`, and none chose another."""
        agreed = (
            Judgment.objects.filter(role=Judgment.Role.REVIEW)
            .exclude(category="")
            .values("request_id")
            .annotate(
                chose=Count("pk", filter=Q(category=value)),
                other=Count("pk", filter=~Q(category=value)),
            )
            .filter(chose__gte=self._agreed_reviewers(), other=0)
            .values("request_id")
        )
        return queryset.filter(pk__in=agreed)
