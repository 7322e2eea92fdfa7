import pytest

from batches.models import Request
from curation import services
from curation.models import Star
from tests.factories import make_batch


@pytest.fixture
def curated(owner, carol, dave):
    """Two models answering the same four inputs; stars, annotations, a preference."""
    first = make_batch(owner, model="tiny-chat", count=4, prefix="c")
    second = make_batch(owner, model="other-model", count=4, prefix="c")
    rows = {(r.batch.model, r.custom_id): r for r in Request.objects.select_related("batch")}
    t = rows[("tiny-chat", "c-0")]
    Star.objects.create(request=t, user=carol)
    Star.objects.create(request=t, user=dave)
    Star.objects.create(request=rows[("tiny-chat", "c-1")], user=carol)
    Star.objects.create(request=rows[("other-model", "c-2")], user=dave)
    services.annotation_update(
        request=t,
        user=carol,
        changes={"quality": 95, "category": "excellent", "tags": ["senior"], "notes": "Crisp."},
    )
    services.annotation_update(
        request=rows[("tiny-chat", "c-1")], user=carol, changes={"quality": 60, "category": "good"}
    )
    services.annotation_update(
        request=rows[("other-model", "c-2")], user=dave, changes={"quality": 85, "tags": ["rust"]}
    )
    services.winner_pick(
        winner_id=rows[("other-model", "c-3")].pk,
        candidate_ids=[rows[("tiny-chat", "c-3")].pk, rows[("other-model", "c-3")].pk],
        user=carol,
    )
    return {"first": first, "second": second, "rows": rows}
