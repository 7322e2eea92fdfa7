"""Each background task goes to its own cluster, whichever process queues it."""

import pytest
from django_q.conf import Conf
from django_q.models import OrmQ

from batches.pipeline import enqueue


@pytest.mark.django_db
@pytest.mark.parametrize("running_in", [enqueue.CONTROL_CLUSTER, enqueue.ENGINE_CLUSTER])
def test_tasks_go_to_their_cluster_from_any_worker(
    running_in, monkeypatch, django_capture_on_commit_callbacks
):
    # An engine worker finishes a batch's last chunk and queues its
    # finalization: that is control work, not a wait behind the next chunk.
    monkeypatch.setattr(Conf, "CLUSTER_NAME", running_in)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.ingest(1)
        enqueue.finalize(1)
        enqueue.webhook(1)
        enqueue.engine_turns(1)
    queued = sorted((task.func(), task.key) for task in OrmQ.objects.all())
    assert queued == [
        ("batches.tasks.deliver_webhook", enqueue.CONTROL_CLUSTER),
        ("batches.tasks.finalize_batch", enqueue.CONTROL_CLUSTER),
        ("batches.tasks.ingest_batch", enqueue.CONTROL_CLUSTER),
        ("batches.tasks.run_next_chunk", enqueue.ENGINE_CLUSTER),
    ]
