"""Enqueue background work after the surrounding transaction commits.

Ingestion and finalization are CPU work for the default ("control") cluster;
chunks go to the "engine" cluster, whose worker keeps the model loaded.
"""

from django.db import transaction
from django_q.tasks import async_task

ENGINE_CLUSTER = "engine"


def ingest(batch_id: int) -> None:
    transaction.on_commit(
        lambda: async_task("batches.tasks.ingest_batch", batch_id, task_name=f"ingest {batch_id}")
    )


def chunks(chunk_ids: list[int]) -> None:
    def enqueue() -> None:
        for chunk_id in chunk_ids:
            async_task(
                "batches.tasks.run_chunk",
                chunk_id,
                cluster=ENGINE_CLUSTER,
                task_name=f"chunk {chunk_id}",
            )

    transaction.on_commit(enqueue)


def finalize(batch_id: int) -> None:
    transaction.on_commit(
        lambda: async_task(
            "batches.tasks.finalize_batch", batch_id, task_name=f"finalize {batch_id}"
        )
    )
