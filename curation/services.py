"""Writes behind curation: every one takes the acting user from the session."""

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from batches.models import Request
from core.exceptions import ApplicationError
from curation.models import Annotation, Preference, Star, Tag

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def star_set(*, request: Request, user: "User", starred: bool) -> bool:
    """Star or unstar a result for `user`; idempotent. Returns whether it is starred."""
    if starred:
        try:
            # A savepoint, so a concurrent double click cannot break an outer transaction.
            with transaction.atomic():
                Star.objects.get_or_create(request=request, user=user)
        except IntegrityError:
            pass  # the other click created it
    else:
        Star.objects.filter(request=request, user=user).delete()
    return starred


def stars_set_bulk(*, requests: QuerySet[Request], user: "User", starred: bool) -> int:
    """Star or unstar many results; returns how many changed."""
    if not starred:
        deleted, _ = Star.objects.filter(request__in=requests, user=user).delete()
        return deleted
    already = Star.objects.filter(user=user, request__in=requests).values("request_id")
    new = [
        Star(request_id=pk, user=user)
        for pk in requests.exclude(pk__in=already).values_list("pk", flat=True)
    ]
    Star.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def tags_get_or_create(names: list[str]) -> list[Tag]:
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


ANNOTATION_FIELDS = ("quality", "category", "notes")


@transaction.atomic
def annotation_update(*, request: Request, user: "User", changes: dict) -> Annotation:
    """Apply `changes` (any of quality, category, notes and tags) to a result's
    annotation; fields not given stay as they are."""
    annotation, _ = Annotation.objects.get_or_create(request=request)
    for field in ANNOTATION_FIELDS:
        if field in changes:
            setattr(annotation, field, changes[field])
    annotation.edited_by = user
    annotation.edited_at = timezone.now()
    annotation.save()
    if "tags" in changes:
        annotation.tags.set(tags_get_or_create(changes["tags"]))
    return annotation


@transaction.atomic
def annotations_set_category_bulk(
    *, requests: QuerySet[Request], user: "User", category: str
) -> int:
    now = timezone.now()
    existing = Annotation.objects.filter(request__in=requests)
    updated = existing.update(category=category, edited_by=user, edited_at=now)
    missing = requests.exclude(pk__in=existing.values("request_id")).values_list("pk", flat=True)
    created = Annotation.objects.bulk_create(
        Annotation(request_id=pk, category=category, edited_by=user, edited_at=now)
        for pk in missing
    )
    return updated + len(created)


@transaction.atomic
def annotations_add_tag_bulk(*, requests: QuerySet[Request], user: "User", tag_name: str) -> int:
    (tag,) = tags_get_or_create([tag_name])
    now = timezone.now()
    missing = requests.exclude(pk__in=Annotation.objects.values("request_id")).values_list(
        "pk", flat=True
    )
    Annotation.objects.bulk_create(
        Annotation(request_id=pk, edited_by=user, edited_at=now) for pk in missing
    )
    annotations = Annotation.objects.filter(request__in=requests).exclude(tags=tag)
    pks = list(annotations.values_list("pk", flat=True))
    Annotation.tags.through.objects.bulk_create(
        Annotation.tags.through(annotation_id=pk, tag_id=tag.pk) for pk in pks
    )
    Annotation.objects.filter(pk__in=pks).update(edited_by=user, edited_at=now)
    return len(pks)


@transaction.atomic
def winner_pick(*, winner_id: int, candidate_ids: list[int], user: "User") -> Request:
    """`user` prefers the result `winner_id` among `candidate_ids`, which must
    be responses to the same input (one custom_id). Returns the winner.

    The winner is starred, and the user's earlier preferences among these
    candidates are replaced by winner-over-each-other.
    """
    ids = set(candidate_ids) | {winner_id}
    # Locked (in id order, so two picks cannot deadlock) until the transaction
    # ends: a double click's second pick waits for the first, then replaces its
    # preferences, instead of inserting the same rows beside them (an
    # IntegrityError on PostgreSQL) or, for another winner, the opposite ones.
    candidates = list(Request.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    if len(candidates) != len(ids):
        raise ApplicationError("Unknown result id among the candidates.", param="candidates")
    if len({c.custom_id for c in candidates}) != 1:
        raise ApplicationError(
            "Candidates must be responses to the same input (one custom_id).",
            param="candidates",
        )
    winner = next(c for c in candidates if c.pk == winner_id)
    others = [c for c in candidates if c.pk != winner.pk]
    pks = [c.pk for c in candidates]
    Preference.objects.filter(user=user, chosen_id__in=pks, rejected_id__in=pks).delete()
    Preference.objects.bulk_create(
        Preference(chosen=winner, rejected=other, user=user) for other in others
    )
    star_set(request=winner, user=user, starred=True)
    return winner
