"""A curated set becomes a Batch API input file that runs on another model."""

import json

from exports import services
from tests.factories import CHAT


def test_a_curated_set_re_runs_through_the_batch_api(curated, carol, openai_client, q_sync):
    record = services.export_create(
        params={"format": "batch_input", "target_model": "tiny-chat"}, user=carol, origin="viewer"
    )
    content = services.export_path(record, "batch_input.jsonl").read_bytes()
    uploaded = openai_client.files.create(file=("rerun.jsonl", content), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
    )
    batch = openai_client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.total == 4  # one per input, whichever models starred it
    output = [
        json.loads(x) for x in openai_client.files.content(batch.output_file_id).text.splitlines()
    ]
    assert sorted(x["custom_id"] for x in output) == ["c-0", "c-1", "c-2", "c-3"]
    assert {x["response"]["body"]["model"] for x in output} == {"tiny-chat"}


def test_the_command_writes_a_batch_input_file(curated, tmp_path):
    from django.core.management import call_command

    target = tmp_path / "rerun.jsonl"
    call_command(
        "export_dataset",
        "--format",
        "batch_input",
        "--target-model",
        "tiny-chat",
        "--model",
        "other-model",
        "-o",
        str(target),
        stderr=__import__("io").StringIO(),
    )
    rows = [json.loads(x) for x in target.read_text().splitlines()]
    assert [r["custom_id"] for r in rows] == ["c-2", "c-3"]
    assert all(r["body"]["model"] == "tiny-chat" and r["method"] == "POST" for r in rows)
