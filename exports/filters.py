"""The export filter: the results filter, gold-starred by default, plus the seed's presets."""

from datetime import timedelta

import django_filters
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from curation.filters import ResultFilter
from curation.models import Annotation

PRESETS = [
    ("all", "All gold-starred"),
    ("quality_high", "Quality ≥ 80"),
    ("recent", "Last 30 days"),
]
HIGH_QUALITY = 80
RECENT_DAYS = 30


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
