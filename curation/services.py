"""Writes behind curation: every one takes the acting user from its caller's
authentication (a session or a reviewer token), never from the request body."""

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from batches.models import Request
from core.exceptions import ApplicationError
from curation import judgments
from curation.models import Annotation, Comparison, Judgment, Preference, Star

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def star_set(*, request: Request, user: "User", starred: bool) -> bool:
    """Star or unstar a result for `user`; idempotent. Returns whether it is starred."""
    if starred:
        # One INSERT that a star already there (a double click's other half)
        # leaves alone: no savepoint, no read first.
        Star.objects.bulk_create([Star(request=request, user=user)], ignore_conflicts=True)
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


def annotation_update(*, request: Request, user: "User", changes: dict) -> Annotation:
    """`user`'s edit of a result's metadata (any of quality, category, notes and
    tags; the others stay): it is their judgment, from which the shared
    annotation is derived (curation.judgments)."""
    judgments.judgment_update(request=request, reviewer=user, changes=changes)
    return Annotation.objects.get(request=request)


def annotations_set_category_bulk(
    *, requests: QuerySet[Request], user: "User", category: str
) -> int:
    return judgments.judgments_update_bulk(requests=requests, reviewer=user, category=category)


def annotations_add_tag_bulk(*, requests: QuerySet[Request], user: "User", tag_name: str) -> int:
    if not tag_name.strip():
        raise ApplicationError("A tag needs a name.", param="tag")
    # A judgment holds at most MAX_TAGS tags, as the review page keeps it: one
    # that is full (and lacks this tag) refuses the whole action.
    full = (
        Judgment.objects.filter(request__in=requests, reviewer=user, role=Judgment.Role.REVIEW)
        .exclude(tags__name__iexact=tag_name.strip())
        .annotate(tag_count=Count("tags"))
        .filter(tag_count__gte=Annotation.MAX_TAGS)
        .values_list("request_id", flat=True)
    )
    if full_ids := list(full[:10]):
        raise ApplicationError(
            f"At most {Annotation.MAX_TAGS} tags per result: your judgment of result "
            f"{', '.join(map(str, full_ids))} has that many already. Nothing was changed.",
            param="tag",
        )
    return judgments.judgments_update_bulk(requests=requests, reviewer=user, add_tag=tag_name)


def winner_pick(*, winner_id: int, candidate_ids: list[int], user: "User") -> Request:
    """`user` prefers the result `winner_id` among `candidate_ids`. Returns the winner."""
    comparison = comparison_record(
        candidate_ids=[*candidate_ids, winner_id],
        user=user,
        outcome=Comparison.Outcome.WINNER,
        winner_id=winner_id,
    )
    assert comparison.winner is not None  # a WINNER outcome names one
    return comparison.winner


@transaction.atomic
def comparison_record(
    *,
    candidate_ids: list[int],
    user: "User",
    outcome: str,
    winner_id: int | None = None,
    blind: bool = False,
) -> Comparison:
    """`user`'s verdict on `candidate_ids`, responses to the same input (one
    custom_id): a winner among them, a tie, or all of them bad. It replaces the
    user's earlier verdict on the same candidates.

    A winner is starred, and the user's preferences among these candidates
    become winner-over-each-other; a tie or both-bad removes them.
    """
    if (outcome == Comparison.Outcome.WINNER) != (winner_id is not None):
        raise ApplicationError(
            "A winner verdict names the winner; a tie or both-bad names none.", param="winner"
        )
    ids = set(candidate_ids) | ({winner_id} if winner_id is not None else set())
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
    if len(candidates) < 2:
        raise ApplicationError("A comparison needs at least two responses.", param="candidates")
    pks = [c.pk for c in candidates]
    winner = next((c for c in candidates if c.pk == winner_id), None)
    Preference.objects.filter(user=user, chosen_id__in=pks, rejected_id__in=pks).delete()
    if winner is not None:
        Preference.objects.bulk_create(
            Preference(chosen=winner, rejected=other, user=user)
            for other in candidates
            if other.pk != winner.pk
        )
        star_set(request=winner, user=user, starred=True)
    comparison, _ = Comparison.objects.update_or_create(
        user=user,
        candidates_key=Comparison.key(pks),
        defaults={
            "custom_id": candidates[0].custom_id,
            "outcome": outcome,
            "winner": winner,
            "blind": blind,
            "created_at": timezone.now(),
        },
    )
    comparison.candidates.set(candidates)
    return comparison
