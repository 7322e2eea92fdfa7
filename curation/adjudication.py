"""Settling a disagreement: a staff member's decision on a result, recorded as theirs.

The decision is a judgment with the role "adjudication", attributed to the
adjudicator; curation.judgments then derives the result's shared metadata
from it (an adjudication settles the result) and logs the edit. Settling
again replaces the adjudicator's earlier decision; another adjudicator's
later decision supersedes it (the latest adjudication settles).
"""

from typing import TYPE_CHECKING

from batches.models import Request
from core.exceptions import ApplicationError
from curation import judgments
from curation.models import Annotation, CategoryChoices, Judgment, Tag

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AdjudicationError(ApplicationError):
    code = "invalid_decision"


def result_settle(
    *,
    request: Request,
    adjudicator: "User",
    quality: int | None,
    category: str,
    tags: list[str],
    notes: str,
) -> Judgment:
    """Record `adjudicator`'s decision on `request`: its quality, category, tags
    and notes, all of them (what is left empty is cleared). Raises
    AdjudicationError, saying what to change, and stores nothing then."""
    if not (adjudicator.is_active and adjudicator.is_staff):
        raise AdjudicationError(
            "Only staff reviewers settle disagreements.", code="not_staff", status=403
        )
    if quality is None and not category:
        raise AdjudicationError(
            "A decision sets a quality or a category (or both).", param="quality"
        )
    if quality is not None and not 0 <= quality <= 100:
        raise AdjudicationError("Quality is a score from 0 to 100.", param="quality")
    if category and category not in CategoryChoices.values:
        raise AdjudicationError(
            f"Category is one of {', '.join(CategoryChoices.values)}.", param="category"
        )
    names = list(dict.fromkeys(name.strip() for name in tags if name.strip()))
    if len(names) > Annotation.MAX_TAGS:
        raise AdjudicationError(f"At most {Annotation.MAX_TAGS} tags per result.", param="tags")
    if any(len(name) > Tag.NAME_MAX_LENGTH for name in names):
        raise AdjudicationError(f"A tag is at most {Tag.NAME_MAX_LENGTH} characters.", param="tags")
    if len(notes) > Annotation.NOTES_MAX_LENGTH:
        raise AdjudicationError(
            f"Notes are at most {Annotation.NOTES_MAX_LENGTH:,} characters.", param="notes"
        )
    return judgments.judgment_update(
        request=request,
        reviewer=adjudicator,
        changes={"quality": quality, "category": category, "tags": names, "notes": notes},
        role=Judgment.Role.ADJUDICATION,
    )
