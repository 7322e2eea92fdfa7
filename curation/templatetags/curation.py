from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from batches.models import Batch
from core.text import clipped
from curation import judgments, selectors
from curation.models import Annotation, CategoryChoices, Tag, annotation_of

register = template.Library()


# Templates cannot catch DoesNotExist cleanly.
register.filter("annotation_of", annotation_of)


@register.filter
def judgment_by(result, user):
    """`user`'s own judgment of `result`: what the metadata form edits."""
    return judgments.judgment_of(request=result, reviewer=user)


@register.filter
def starred_by(result, user) -> bool:
    """Whether `user` starred `result` (from the prefetched stars)."""
    return any(star.user_id == user.pk for star in result.stars.all())


@register.simple_tag
def category_choices():
    return CategoryChoices.choices


# Limits live on the models and selectors; templates read them here so that a
# changed constant cannot leave a stale copy in the HTML.


@register.simple_tag
def annotation_limits() -> dict[str, int]:
    return {
        "notes": Annotation.NOTES_MAX_LENGTH,
        "tags": Annotation.MAX_TAGS,
        "tag_length": Tag.NAME_MAX_LENGTH,
    }


@register.simple_tag
def results_count_cap() -> int:
    return selectors.COUNT_CAP


@register.simple_tag
def terminal_statuses() -> str:
    """Space-separated, for a data attribute: the dashboard script stops polling these."""
    return " ".join(str(status) for status in Batch.TERMINAL_STATUSES)


@register.filter
def percent(part, whole) -> int:
    return int(100 * (part or 0) / whole) if whole else 0


@register.inclusion_tag("viewer/_bars.html")
def bar_chart(
    series: list[tuple[str, int]], *, title: str, label: str = "Label", value: str = "Value"
) -> dict:
    """A captioned SVG bar chart of (label, value) pairs, bars at most 100 units high.

    The SVG is one image named by `title`; a visually hidden table carries the
    numbers for screen readers, which cannot read the bars themselves.
    """
    peak = max((count for _, count in series), default=0)
    bars = []
    for i, (name, count) in enumerate(series):
        height = round(100 * count / peak, 1) if peak else 0
        bars.append(
            {"label": name, "value": count, "x": i * 10 + 1, "y": 110 - height, "height": height}
        )
    return {
        "title": title,
        "label_heading": label,
        "value_heading": value,
        "bars": bars,
        "width": max(len(series), 1) * 10,
        "peak": peak,
        "first": series[0][0] if series else "",
        "last": series[-1][0] if series else "",
    }


@register.filter
def metadata_label(metadata, limit: int = 80) -> str:
    """A batch's metadata as one short line ("demo: greedy, seed: 42"), which
    tells apart two batches of the same model; any stored value renders."""
    if not isinstance(metadata, dict) or not metadata:
        return ""
    return clipped(", ".join(f"{key}: {value}" for key, value in metadata.items()), limit)


# Queue instructions are anyone's markdown: raw HTML is shown as text, and links
# may only lead to web pages, mail, or this site (no javascript:, data:, file:).
# Images are off: the viewer loads nothing from elsewhere.
_LINK_SCHEMES = ("http:", "https:", "mailto:")


def _safe_link(url: str) -> bool:
    target = url.strip().lower()
    if ":" not in target.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        return True  # relative: a page of this viewer
    return target.startswith(_LINK_SCHEMES)


_markdown = MarkdownIt("commonmark", {"html": False}).disable("image")
_markdown.validateLink = _safe_link  # type: ignore[method-assign]


@register.filter
def markdown(text) -> str:
    """`text` rendered as CommonMark: HTML-safe, since markdown-it escapes all raw HTML."""
    return mark_safe(_markdown.render(str(text or "")))
