"""Per-reviewer judgments, their edit history, and the shared metadata derived from them.

Every reviewer's quality, category, tags and notes on a result are their own
Judgment row; each change is logged as a JudgmentEdit (who, when, before and
after). The result's Annotation, which the filters, the exports and the pages
read, is derived from its judgments by one rule (annotations_derive):

- an adjudication, once recorded, settles the result: its values are the metadata;
- otherwise quality is the mean of the reviewers' scores (rounded half up),
  category the most common one (a tie goes to the latest edited), tags the
  union of everyone's, and notes the latest edited non-empty notes.

With one reviewer that is simply their judgment, so single-reviewer work reads
exactly as before.
"""

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from batches.models import Request
from curation.models import Annotation, Judgment, JudgmentEdit, Tag

if TYPE_CHECKING:
    from django.contrib.auth.models import User

JUDGMENT_FIELDS = ("quality", "category", "notes")


def tags_get_or_create(names: Iterable[str]) -> list[Tag]:
    """Tags by name, case-insensitively reused; new names are created."""
    tags = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        tag = Tag.objects.filter(name__iexact=name).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(name=name)
            except IntegrityError:  # created meanwhile by someone else
                tag = Tag.objects.get(name__iexact=name)
        tags.append(tag)
    return tags


def _lock(request_ids: list[int]) -> None:
    """Serialise writers of these results' judgments (in id order: no deadlock),
    so each derivation sees every committed judgment."""
    list(Request.objects.select_for_update().filter(pk__in=request_ids).order_by("pk").values("pk"))


@transaction.atomic
def judgment_update(
    *,
    request: Request,
    reviewer: "User",
    changes: dict,
    role: str = Judgment.Role.REVIEW,
) -> Judgment:
    """Apply `changes` (any of quality, category, notes, tags) to `reviewer`'s
    judgment of `request`; fields not given stay. Logs the edit, re-derives the
    result's shared metadata, and returns the judgment."""
    _lock([request.pk])
    judgment, _ = Judgment.objects.get_or_create(request=request, reviewer=reviewer, role=role)
    diff = {}
    for field in JUDGMENT_FIELDS:
        if field in changes and getattr(judgment, field) != changes[field]:
            diff[field] = [getattr(judgment, field), changes[field]]
            setattr(judgment, field, changes[field])
    if "tags" in changes:
        before = sorted(tag.name for tag in judgment.tags.all())
        tags = tags_get_or_create(changes["tags"])
        after = sorted(tag.name for tag in tags)
        if before != after:
            diff["tags"] = [before, after]
            judgment.tags.set(tags)
    if diff:
        judgment.updated_at = timezone.now()
        judgment.save()
        JudgmentEdit.objects.create(
            judgment=judgment, editor=reviewer, changes=diff, at=judgment.updated_at
        )
    annotations_derive([request.pk])
    return judgment


@transaction.atomic
def judgments_update_bulk(
    *,
    requests: QuerySet[Request],
    reviewer: "User",
    category: str | None = None,
    add_tag: str | None = None,
) -> int:
    """Set `category` or add the tag `add_tag` in `reviewer`'s judgments of many
    results at once; returns how many judgments changed."""
    ids = list(requests.order_by().values_list("pk", flat=True))
    _lock(ids)
    now = timezone.now()
    existing = set(
        Judgment.objects.filter(
            request_id__in=ids, reviewer=reviewer, role=Judgment.Role.REVIEW
        ).values_list("request_id", flat=True)
    )
    Judgment.objects.bulk_create(
        Judgment(request_id=pk, reviewer=reviewer, created_at=now, updated_at=now)
        for pk in ids
        if pk not in existing
    )
    mine = Judgment.objects.filter(request_id__in=ids, reviewer=reviewer, role=Judgment.Role.REVIEW)
    edits: list[tuple[int, dict]] = []
    if category is not None:
        changing = list(mine.exclude(category=category).values_list("pk", "category"))
        mine.filter(pk__in=[pk for pk, _ in changing]).update(category=category, updated_at=now)
        edits = [(pk, {"category": [before, category]}) for pk, before in changing]
    if add_tag is not None:
        (tag,) = tags_get_or_create([add_tag])
        changing_pks = list(mine.exclude(tags=tag).values_list("pk", flat=True))
        Judgment.tags.through.objects.bulk_create(
            Judgment.tags.through(judgment_id=pk, tag_id=tag.pk) for pk in changing_pks
        )
        mine.filter(pk__in=changing_pks).update(updated_at=now)
        edits = [(pk, {"tags": {"added": tag.name}}) for pk in changing_pks]
    JudgmentEdit.objects.bulk_create(
        JudgmentEdit(judgment_id=pk, editor=reviewer, changes=diff, at=now) for pk, diff in edits
    )
    annotations_derive(ids)
    return len(edits)


def annotations_derive(request_ids: list[int]) -> None:
    """Recompute the Annotation of each result from its judgments (the rule in
    the module docstring). Results nobody has judged keep what they have."""
    judgments: dict[int, list[Judgment]] = {}
    rows = (
        Judgment.objects.filter(request_id__in=request_ids)
        .select_related("reviewer")
        .prefetch_related("tags")
        .order_by("updated_at", "pk")
    )
    for judgment in rows:
        judgments.setdefault(judgment.request_id, []).append(judgment)
    if not judgments:
        return
    current = {a.pk: a for a in Annotation.objects.filter(request_id__in=list(judgments))}
    new: list[Annotation] = []
    changed: list[Annotation] = []
    tag_rows = []
    for request_id, judged in judgments.items():
        values, tags = derive(judged)
        annotation = current.get(request_id) or Annotation(request_id=request_id)
        for field, value in values.items():
            setattr(annotation, field, value)
        (changed if request_id in current else new).append(annotation)
        tag_rows += [Annotation.tags.through(annotation_id=request_id, tag_id=t) for t in tags]
    Annotation.objects.bulk_create(new)
    Annotation.objects.bulk_update(
        changed, ["quality", "category", "notes", "edited_by", "edited_at"]
    )
    Annotation.tags.through.objects.filter(annotation_id__in=list(judgments)).delete()
    Annotation.tags.through.objects.bulk_create(tag_rows)


def derive(judged: list[Judgment]) -> tuple[dict, list[int]]:
    """The shared metadata from one result's judgments (oldest edit first):
    field values and tag ids."""
    latest = judged[-1]
    settled = [j for j in judged if j.role == Judgment.Role.ADJUDICATION]
    if settled:
        decision = settled[-1]
        values = {field: getattr(decision, field) for field in JUDGMENT_FIELDS}
        values |= {"edited_by": decision.reviewer, "edited_at": decision.updated_at}
        return values, [tag.pk for tag in decision.tags.all()]
    scores = [j.quality for j in judged if j.quality is not None]
    categories = Counter(j.category for j in judged if j.category)
    top = max(categories.values(), default=0)
    # The latest edited among the most common categories.
    category = next((j.category for j in reversed(judged) if categories[j.category] == top), "")
    notes = next((j.notes for j in reversed(judged) if j.notes), "")
    tags = dict.fromkeys(tag.pk for j in judged for tag in j.tags.all())
    values = {
        "quality": int(sum(scores) / len(scores) + 0.5) if scores else None,
        "category": category if top else "",
        "notes": notes,
        "edited_by": latest.reviewer,
        "edited_at": latest.updated_at,
    }
    return values, list(tags)


def judgment_history(*, request: Request) -> list[JudgmentEdit]:
    return list(
        JudgmentEdit.objects.filter(judgment__request=request)
        .select_related("editor", "judgment__reviewer")
        .order_by("-at", "-pk")
    )


def judgment_of(*, request: Request, reviewer: "User") -> Judgment | None:
    """`reviewer`'s own judgment of `request` (not an adjudication), if any."""
    return (
        Judgment.objects.filter(request=request, reviewer=reviewer, role=Judgment.Role.REVIEW)
        .prefetch_related("tags")
        .first()
    )
