"""The README's example agent (examples/review_agent.py), run as a process against
a live viewer: it works a queue to the end, as its token's user."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from curation import queues
from curation.models import Comparison, ItemReview, Judgment, QueueItem
from curation.tokens import token_create
from tests.factories import make_batch

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

SCRIPT = settings.BASE_DIR / "examples" / "review_agent.py"


def run_agent(live_server, token: str, queue_name: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BATCHSERVER_VIEWER_URL": live_server.url,
        "BATCHSERVER_REVIEWER_TOKEN": token,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), queue_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_agent_works_a_queue_to_the_end(live_server, owner, carol, django_user_model):
    agent = django_user_model.objects.create_user("agent-1")
    token = token_create(user=agent, name="example")[1]
    batch = make_batch(owner, count=5, prefix="e")
    queue = queues.queue_create(
        spec=queues.QueueSpec(
            name="first pass",
            filter_query=f"batch={batch.public_id}",
            fields=("star", "quality", "category", "tags", "notes"),
        ),
        created_by=carol,
    )
    done = run_agent(live_server, token, "first pass")
    assert done.returncode == 0, done.stderr
    assert "submitted 5 item(s)" in done.stdout
    assert ItemReview.objects.filter(queue=queue, reviewer=agent, state="done").count() == 5
    judged = Judgment.objects.filter(request__batch=batch)
    assert judged.count() == 5 and set(judged.values_list("reviewer", flat=True)) == {agent.pk}
    assert all(j.quality is not None and j.tags.exists() for j in judged)
    assert all(item.done_count == 1 for item in QueueItem.objects.filter(queue=queue))


def test_the_example_agent_gives_verdicts_in_a_pairwise_queue(
    live_server, owner, carol, django_user_model
):
    agent = django_user_model.objects.create_user("agent-1")
    token = token_create(user=agent)[1]
    first = make_batch(owner, model="m-1", count=3, prefix="p")
    second = make_batch(owner, model="model-22", count=3, prefix="p")
    queues.queue_create(
        spec=queues.QueueSpec(
            name="pairs",
            kind="pairwise",
            compare_batches=(first.public_id, second.public_id),
        ),
        created_by=carol,
    )
    done = run_agent(live_server, token, "pairs")
    assert done.returncode == 0, done.stderr
    # "model-22 says hire i" is longer than "m-1 says hire i": b wins each time.
    verdicts = Comparison.objects.filter(user=agent)
    assert verdicts.count() == 3
    assert set(verdicts.values_list("winner__batch", flat=True)) == {second.pk}


def test_the_example_agent_names_a_missing_queue(live_server, django_user_model):
    agent = django_user_model.objects.create_user("agent-1")
    done = run_agent(live_server, token_create(user=agent)[1], "nope")
    assert done.returncode != 0 and "No queue named 'nope'" in done.stderr
