"""Enqueue background work after the surrounding transaction commits.

Ingestion, finalization and webhooks are CPU work for the default ("control")
cluster; chunks go to the "engine" cluster, whose worker keeps the model
loaded. Each task names its cluster: django-q2 otherwise queues a task on the
cluster of the process that enqueues it, and a batch finished by an engine
worker would wait for its finalization behind the engine's next chunk.
"""

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

ENGINE_CLUSTER = "engine"
CONTROL_CLUSTER = settings.Q_CLUSTER["name"]


def ingest(batch_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "batches.tasks.ingest_batch",
            batch_id,
            cluster=CONTROL_CLUSTER,
            task_name=f"ingest {batch_id}",
        )
    )


def engine_turns(count: int) -> None:
    """Give the engine cluster `count` turns; each runs the fairest pending chunk.

    Turns are not tied to a chunk: which chunk runs is decided when a worker is
    free, so batches take turns whatever order they were created in. A turn
    that finds nothing to run does nothing.
    """

    def enqueue() -> None:
        for _ in range(count):
            async_task("batches.tasks.run_next_chunk", cluster=ENGINE_CLUSTER, task_name="turn")

    transaction.on_commit(enqueue)


def finalize(batch_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "batches.tasks.finalize_batch",
            batch_id,
            cluster=CONTROL_CLUSTER,
            task_name=f"finalize {batch_id}",
        )
    )


def webhook(delivery_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "batches.tasks.deliver_webhook",
            delivery_id,
            cluster=CONTROL_CLUSTER,
            task_name=f"webhook {delivery_id}",
        )
    )
