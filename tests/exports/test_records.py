"""Filters, the record and manifest of every export, streaming, the command."""

import hashlib
import json
import subprocess
import sys
import tracemalloc
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.utils import timezone

from batches.models import Request
from curation.models import Star
from exports import services
from exports.models import Export
from tests.factories import make_batch


def custom_ids(record: Export) -> list[str]:
    path = services.export_path(record, record.files[0]["name"])
    return sorted(
        f"{json.loads(line)['meta']['model']}:{json.loads(line)['meta']['custom_id']}"
        for line in path.read_text().splitlines()
    )


def icl(carol, **params) -> list[str]:
    return custom_ids(
        services.export_create(params={"format": "icl", **params}, user=carol, origin="viewer")
    )


def test_each_export_filter_and_their_combinations(curated, carol, dave):
    everything = ["other-model:c-2", "other-model:c-3", "tiny-chat:c-0", "tiny-chat:c-1"]
    assert icl(carol) == everything  # all gold-starred
    assert icl(carol, filter="quality_high") == ["other-model:c-2", "tiny-chat:c-0"]
    Request.objects.filter(custom_id="c-1").update(finished_at=timezone.now() - timedelta(days=45))
    assert icl(carol, filter="recent") == ["other-model:c-2", "other-model:c-3", "tiny-chat:c-0"]
    assert icl(carol, category="excellent") == ["tiny-chat:c-0"]
    assert icl(carol, tag="rust") == ["other-model:c-2"]
    assert icl(carol, model="other-model") == ["other-model:c-2", "other-model:c-3"]
    assert icl(carol, batch=curated["first"].public_id) == ["tiny-chat:c-0", "tiny-chat:c-1"]
    assert icl(carol, starred_by=dave.pk) == ["other-model:c-2", "tiny-chat:c-0"]
    assert icl(carol, starred="me") == ["other-model:c-3", "tiny-chat:c-0", "tiny-chat:c-1"]
    assert icl(carol, filter="quality_high", model="tiny-chat", starred_by=dave.pk) == [
        "tiny-chat:c-0"
    ]
    assert len(icl(carol, starred="any", limit=100)) == 8


def test_every_export_is_recorded_with_a_manifest_and_checksums(curated, carol):
    record = services.export_create(
        params={"format": "finetuning", "model": "tiny-chat"}, user=carol, origin="viewer"
    )
    directory = services.exports_root() / record.directory
    assert directory.parent == settings.DATA_DIR / "gold_star" / "exports"
    (file,) = record.files
    path = directory / file["name"]
    assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file["bytes"] == path.stat().st_size and file["rows"] == 2 == record.rows
    manifest = json.loads((directory / "metadata.json").read_text())
    assert manifest["id"] == record.pk
    assert manifest["format"] == "finetuning" and manifest["created_by"] == "carol"
    assert manifest["params"] == {
        "format": "finetuning",
        "model": "tiny-chat",
        "filter": "all",
        "starred": "yes",
    }
    assert manifest["files"] == record.files
    assert manifest["skipped"] == {"rows": 0, "reasons": {}, "examples": []}
    assert (record.user, record.origin) == (carol, "viewer")
    assert sorted(record.results.values_list("custom_id", flat=True)) == ["c-0", "c-1"]


def test_purging_results_never_breaks_a_recorded_export(curated, carol):
    record = services.export_create(params={"format": "icl"}, user=carol, origin="viewer")
    before = services.export_path(record, record.files[0]["name"]).read_bytes()
    Request.objects.all().delete()  # what retention would do to uncurated data, and more
    record.refresh_from_db()
    assert services.export_path(record, record.files[0]["name"]).read_bytes() == before
    assert record.rows == 4


def test_large_exports_stream_in_flat_memory(owner, carol):
    """Peak memory while exporting does not grow with the number of rows."""
    small = make_batch(owner, count=3_000, prefix="small")
    large = make_batch(owner, count=12_000, prefix="large")
    ids = Request.objects.values_list("pk", flat=True)
    Star.objects.bulk_create(Star(request_id=pk, user=carol) for pk in ids)

    def peak(batch, export_format: str) -> tuple[int, int]:
        params = {"format": export_format, "batch": batch.public_id, "limit": 100_000}
        tracemalloc.start()
        record = services.export_create(params=params, user=carol, origin="command")
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return record.rows, high

    for export_format in ("icl", "finetuning", "csv"):
        small_rows, small_peak = peak(small, export_format)
        large_rows, large_peak = peak(large, export_format)
        assert (small_rows, large_rows) == (3_000, 12_000)
        assert large_peak < small_peak * 1.3, (export_format, small_peak, large_peak)


def test_the_command_writes_to_stdout_a_path_or_a_directory(curated, carol, tmp_path):
    out = StringIO()
    call_command(
        "export_dataset", "--format", "finetuning", "--user", "carol", stdout=out, stderr=StringIO()
    )
    written = (
        services.exports_root() / Export.objects.get().directory / "finetuning_data.jsonl"
    ).read_text()
    assert out.getvalue() == written and written.count("\n") == 4

    target = tmp_path / "icl.jsonl"
    err = StringIO()
    call_command(
        "export_dataset",
        "--format",
        "icl",
        "--filter",
        "quality_high",
        "-o",
        str(target),
        stderr=err,
    )
    assert len(target.read_text().splitlines()) == 2
    assert "2 rows, 0 skipped" in err.getvalue() and "sha256" in err.getvalue()

    call_command(
        "export_dataset",
        "--format",
        "finetuning",
        "--stars",
        "any",
        "--split",
        "0.5",
        "-o",
        str(tmp_path / "ft"),
        stderr=StringIO(),
    )
    assert sorted(p.name for p in (tmp_path / "ft").iterdir()) == [
        "metadata.json",
        "train.jsonl",
        "validation.jsonl",
    ]
    assert Export.objects.count() == 3
    assert set(Export.objects.values_list("origin", flat=True)) == {"command"}


def test_the_command_reports_bad_options_and_filters(curated):
    with pytest.raises(CommandError, match="target_model"):
        call_command("export_dataset", "--format", "batch_input", stdout=StringIO())
    with pytest.raises(CommandError, match="No user"):
        call_command(
            "export_dataset", "--format", "icl", "--starred-by", "nobody", stdout=StringIO()
        )
    with pytest.raises(CommandError, match="--output DIRECTORY"):
        call_command(
            "export_dataset", "--format", "finetuning", "--split", "0.1", stdout=StringIO()
        )


def test_the_command_streams_to_a_pipe(curated, subprocess_env):
    result = subprocess.run(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "export_dataset",
            "--format",
            "csv",
            "--stars",
            "any",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[0].startswith("result_id,batch_id,model,custom_id")
    assert len(result.stdout.splitlines()) == 9
    assert "Export" in result.stderr


def _fail_on_manifest(monkeypatch):
    write_bytes = Path.write_bytes

    def failing(path, data):
        if path.name == services.MANIFEST:
            raise OSError(28, "No space left on device")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", failing)


def _fail_on_links(monkeypatch):
    def failing(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Export.results.through.objects, "bulk_create", failing)


def _fail_on_move(monkeypatch):
    def failing(path, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(Path, "rename", failing)


def _fail_on_commit(monkeypatch):
    def failing():
        raise DatabaseError("could not commit")

    monkeypatch.setattr(connection, "commit", failing)


@pytest.mark.django_db(transaction=True)  # a real commit, to fail it
@pytest.mark.parametrize(
    "fail", [_fail_on_links, _fail_on_manifest, _fail_on_move, _fail_on_commit]
)
@pytest.mark.parametrize("how", ["export_create", "export_record_content"])
def test_a_failure_while_recording_leaves_neither_a_row_nor_a_directory(
    curated, carol, monkeypatch, fail, how
):
    before = set(services.exports_root().iterdir())
    fail(monkeypatch)
    with pytest.raises((OSError, DatabaseError)):
        if how == "export_create":
            services.export_create(params={"format": "icl"}, user=carol, origin="viewer")
        else:
            services.export_record_content(
                content=b"a,b\n",
                filename="results.csv",
                result_ids=list(Request.objects.values_list("pk", flat=True)),
                params={},
                user=carol,
                origin="admin",
            )
    monkeypatch.undo()
    assert not Export.objects.exists()
    assert set(services.exports_root().iterdir()) == before  # no files, no manifest, no scratch


def test_a_recorded_export_has_its_manifest_before_it_commits(curated, carol, monkeypatch):
    """What the transaction sees at its last statement is what commits."""
    seen = {}
    rename = Path.rename

    def moved_then_checked(path, target):
        result = rename(path, target)
        seen["manifest"] = json.loads((Path(target) / services.MANIFEST).read_text())
        seen["rows"] = Export.objects.count()
        return result

    monkeypatch.setattr(Path, "rename", moved_then_checked)
    record = services.export_create(params={"format": "icl"}, user=carol, origin="viewer")
    assert seen["manifest"]["id"] == record.pk and seen["rows"] == 1
