"""The results filter: one FilterSet for the table, the review page and (later) exports.

Its state is the query string, so a filtered view is a shareable URL.
"""

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, QuerySet

from batches.models import Batch, Request
from curation import search
from curation.models import Annotation, CategoryChoices, Star, Tag

STARRED_CHOICES = [
    ("yes", "Starred by anyone"),
    ("me", "Starred by me"),
    ("no", "Not starred"),
]


def _models() -> list[tuple[str, str]]:
    names = Batch.objects.exclude(model="").order_by("model").values_list("model", flat=True)
    return [(name, name) for name in names.distinct()]


def _reviewers():
    has_starred = Exists(Star.objects.filter(user=OuterRef("pk")))
    return get_user_model().objects.filter(has_starred).order_by("username")


class ResultFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Search prompt and response")
    batch = django_filters.ModelChoiceFilter(
        queryset=Batch.objects.order_by("-pk"), to_field_name="public_id", label="Batch"
    )
    model = django_filters.ChoiceFilter(field_name="batch__model", choices=_models, label="Model")
    status = django_filters.ChoiceFilter(choices=Request.Status.choices)
    starred = django_filters.ChoiceFilter(
        choices=STARRED_CHOICES, method="filter_starred", label="Stars"
    )
    starred_by = django_filters.ModelChoiceFilter(
        queryset=_reviewers(), method="filter_starred_by", label="Starred by"
    )
    quality = django_filters.RangeFilter(
        method="filter_quality",
        label="Quality",
        widget=django_filters.widgets.RangeWidget(attrs={"type": "number", "min": 0, "max": 100}),
    )
    category = django_filters.ChoiceFilter(
        choices=CategoryChoices.choices, method="filter_category", label="Category"
    )
    tag = django_filters.ModelChoiceFilter(
        queryset=Tag.objects.all(), to_field_name="name", method="filter_tag", label="Tag"
    )
    finished = django_filters.DateFromToRangeFilter(
        field_name="finished_at",
        label="Finished between",
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )

    class Meta:
        model = Request
        fields = []

    def __init__(self, data=None, *args, user=None, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.user = user

    # Annotation and star filters are subqueries on the (small) curation
    # tables, so the database starts from the few curated rows.

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return search.filter_results(queryset, value)

    def filter_starred(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "yes":
            return queryset.filter(pk__in=Star.objects.values("request_id"))
        if value == "no":
            return queryset.exclude(Exists(Star.objects.filter(request=OuterRef("pk"))))
        if value == "me" and self.user is not None:
            return queryset.filter(pk__in=Star.objects.filter(user=self.user).values("request_id"))
        return queryset

    def filter_starred_by(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(pk__in=Star.objects.filter(user=value).values("request_id"))

    def filter_quality(self, queryset: QuerySet, name: str, value) -> QuerySet:
        annotations = Annotation.objects.all()
        if value.start is not None:
            annotations = annotations.filter(quality__gte=value.start)
        if value.stop is not None:
            annotations = annotations.filter(quality__lte=value.stop)
        return queryset.filter(pk__in=annotations.values("request_id"))

    def filter_category(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        annotations = Annotation.objects.filter(category=value)
        return queryset.filter(pk__in=annotations.values("request_id"))

    def filter_tag(self, queryset: QuerySet, name: str, value: Tag) -> QuerySet:
        annotations = Annotation.objects.filter(tags=value)
        return queryset.filter(pk__in=annotations.values("request_id"))
