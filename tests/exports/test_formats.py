"""Each format's exact shape, and rows that would be invalid reported, not written."""

import csv
import io
import json

import pytest

from batches.models import Request
from exports import services
from exports.models import Export
from exports.services import export_path


def export(carol=None, **params):
    record = services.export_create(params=params, user=carol, origin="command")
    return record, [export_path(record, f["name"]) for f in record.files]


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_icl_lines_are_messages_plus_meta_best_first(curated, carol):
    record, (path,) = export(carol, format="icl")
    rows = lines(path)
    assert [r["meta"]["custom_id"] for r in rows] == ["c-0", "c-2", "c-1", "c-3"]
    first = rows[0]
    assert set(first) == {"messages", "meta"}
    assert first["messages"] == [
        {"role": "system", "content": "You evaluate candidates."},
        {"role": "user", "content": "Candidate 0 writes Rust and Python."},
        {"role": "assistant", "content": "tiny-chat says hire 0"},
    ]
    assert first["meta"] == {
        "custom_id": "c-0",
        "batch_id": curated["first"].public_id,
        "model": "tiny-chat",
        "quality_score": 95,
        "category": "excellent",
        "tags": ["senior"],
        "notes": "Crisp.",
        "starred_by": ["carol", "dave"],
        "starred_at": first["meta"]["starred_at"],
    }
    assert first["meta"]["starred_at"].startswith("20")
    assert rows[-1]["meta"]["quality_score"] is None  # unscored, starred as a winner
    assert record.rows == 4 and record.skipped == 0


def test_icl_limit_and_token_budget(curated, carol):
    _, (path,) = export(carol, format="icl", limit=2)
    assert [r["meta"]["custom_id"] for r in lines(path)] == ["c-0", "c-2"]
    _, (path,) = export(carol, format="icl", token_budget=35)  # each example is 12 + 4 tokens
    assert len(lines(path)) == 2


def test_finetuning_lines_are_exactly_messages(curated, carol):
    _, (path,) = export(carol, format="finetuning")
    rows = lines(path)
    assert len(rows) == 4
    for row in rows:
        assert list(row) == ["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} and m["content"] for m in row["messages"])


def test_finetuning_split_is_seeded_and_complete(owner, carol):
    from curation.models import Star
    from tests.factories import make_batch

    batch = make_batch(owner, count=60)
    Star.objects.bulk_create(Star(request=r, user=carol) for r in batch.requests.all())
    record, (train, validation) = export(carol, format="finetuning", split=0.2, seed=7)
    assert [f["name"] for f in record.files] == ["train.jsonl", "validation.jsonl"]
    train_rows, validation_rows = lines(train), lines(validation)
    assert len(train_rows) + len(validation_rows) == 60
    assert 3 <= len(validation_rows) <= 25
    _, (train_again, validation_again) = export(carol, format="finetuning", split=0.2, seed=7)
    assert train_again.read_bytes() == train.read_bytes()
    assert validation_again.read_bytes() == validation.read_bytes()
    _, (_, other_validation) = export(carol, format="finetuning", split=0.2, seed=8)
    assert other_validation.read_bytes() != validation.read_bytes()


def test_preference_lines_have_openais_dpo_shape(curated, carol):
    _, (path,) = export(carol, format="preference")
    (row,) = lines(path)
    assert row == {
        "input": {
            "messages": [
                {"role": "system", "content": "You evaluate candidates."},
                {"role": "user", "content": "Candidate 3 writes Rust and Python."},
            ]
        },
        "preferred_output": [{"role": "assistant", "content": "other-model says hire 3"}],
        "non_preferred_output": [{"role": "assistant", "content": "tiny-chat says hire 3"}],
    }


def test_csv_has_one_row_per_result_with_metadata_and_no_formulas(curated, carol):
    Request.objects.filter(custom_id="c-0", batch=curated["first"]).update(
        response={"choices": [{"message": {"role": "assistant", "content": '=HYPERLINK("x")'}}]}
    )
    _, (path,) = export(carol, format="csv", starred="any")
    text = path.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8
    first = next(r for r in rows if r["custom_id"] == "c-0" and r["model"] == "tiny-chat")
    assert first["response"] == '\'=HYPERLINK("x")'
    assert (first["quality"], first["category"], first["tags"]) == ("95", "excellent", "senior")
    assert first["starred_by"] == "carol; dave" and first["stars"] == "2"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_batch_input_round_trip_keeps_the_messages_and_changes_the_model(curated, carol):
    _, (path,) = export(carol, format="batch_input", starred="any", target_model="tiny-chat")
    rows = lines(path)
    assert [r["custom_id"] for r in rows] == ["c-0", "c-1", "c-2", "c-3"]  # one per input
    assert rows[0] == {
        "custom_id": "c-0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "tiny-chat",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "You evaluate candidates."},
                {"role": "user", "content": "Candidate 0 writes Rust and Python."},
            ],
        },
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"response": {"choices": [{"message": {"role": "assistant", "content": "  "}}]}},
            "empty response",
        ),
        ({"body": {"model": "m", "messages": [{"role": "tool", "content": "x"}]}}, "role 'tool'"),
        (
            {"body": {"model": "m", "messages": [{"role": "system", "content": "only"}]}},
            "no user message",
        ),
        (
            {"body": {"model": "m", "messages": [{"role": "user", "content": ""}]}},
            "empty user message",
        ),
    ],
)
def test_invalid_rows_are_reported_and_not_written(curated, carol, change, reason):
    bad = Request.objects.get(custom_id="c-0", batch=curated["first"])
    Request.objects.filter(pk=bad.pk).update(**change)
    record, (path,) = export(carol, format="finetuning")
    assert record.rows == 3 and record.skipped == 1
    assert "c-0" not in path.read_text() or "tiny-chat says hire 0" not in path.read_text()
    manifest = json.loads(export_path(record, "metadata.json").read_text())
    (reported,) = manifest["skipped"]["examples"]
    assert reported["custom_id"] == "c-0" and reason in reported["reason"]
    assert sum(manifest["skipped"]["reasons"].values()) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "icl", "limit": 0}, "limit"),
        ({"format": "finetuning", "split": 0.9}, "split"),
        ({"format": "batch_input"}, "target_model"),
        ({"format": "batch_input", "target_model": "gpt-4o"}, "not served"),
        ({"format": "icl", "quality_min": "high"}, "quality"),
        ({"format": "icl", "category": "superb"}, "category"),
        ({"format": "icl", "batch": "batch_nope"}, "batch"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_recorded(curated, carol, params, message):
    with pytest.raises(services.ExportError) as raised:
        services.export_create(params=params, user=carol, origin="command")
    assert message in str(raised.value)
    assert not Export.objects.exists()
    assert [p.name for p in services.exports_root().iterdir() if p.name.startswith(".")] == []


def test_an_empty_selection_is_an_error_not_an_empty_file(owner, carol):
    with pytest.raises(services.ExportError, match="Nothing matches"):
        services.export_create(params={"format": "icl"}, user=carol, origin="command")
    assert not Export.objects.exists()
