from django import template

from curation.models import CategoryChoices, annotation_of

register = template.Library()


# Templates cannot catch DoesNotExist cleanly.
register.filter("annotation_of", annotation_of)


@register.filter
def starred_by(result, user) -> bool:
    """Whether `user` starred `result` (from the prefetched stars)."""
    return any(star.user_id == user.pk for star in result.stars.all())


@register.simple_tag
def category_choices():
    return CategoryChoices.choices


@register.filter
def percent(part, whole) -> int:
    return int(100 * (part or 0) / whole) if whole else 0


@register.inclusion_tag("viewer/_bars.html")
def bar_chart(series: list[tuple[str, int]]) -> dict:
    """An SVG bar chart of (label, value) pairs, bars at most 100 units high."""
    peak = max((value for _, value in series), default=0)
    bars = []
    for i, (label, value) in enumerate(series):
        height = round(100 * value / peak, 1) if peak else 0
        bars.append(
            {"label": label, "value": value, "x": i * 10 + 1, "y": 110 - height, "height": height}
        )
    return {
        "bars": bars,
        "width": max(len(series), 1) * 10,
        "peak": peak,
        "first": series[0][0] if series else "",
        "last": series[-1][0] if series else "",
    }
