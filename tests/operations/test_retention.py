"""Retention with the clock moved forward: uncurated data goes, curated stays forever."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import openai
import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from batches.models import Batch, File, Request
from batches.purge import purge_expired
from curation.models import Annotation, Preference, Star
from exports import services as exports
from tests.factories import CHAT, chat_requests

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def finished(openai_client, q_sync, carol):
    """Two finished batches of four; in the first, one result starred, one
    annotated, one preferred over the second's answer; one exported."""

    def run():
        file = openai_client.files.create(file=("in.jsonl", chat_requests(4)), purpose="batch")
        created = openai_client.batches.create(
            input_file_id=file.id, endpoint=CHAT, completion_window="24h"
        )
        return Batch.objects.get(public_id=created.id)

    first, second = run(), run()
    rows = list(first.requests.order_by("line"))
    Star.objects.create(request=rows[0], user=carol)
    Annotation.objects.create(request=rows[1], quality=70, edited_by=carol)
    other = second.requests.get(custom_id=rows[2].custom_id)
    Preference.objects.create(chosen=rows[2], rejected=other, user=carol)
    export = exports.export_create(
        params={"format": "finetuning", "starred": "yes"}, user=carol, origin="viewer"
    )
    return {"first": first, "second": second, "rows": rows, "export": export, "rejected": other}


def a_month_later():
    return timezone.now() + timedelta(days=31)


def test_the_purge_runs_daily():
    schedule = Schedule.objects.get(name="batchserver: purge expired")
    assert (schedule.func, schedule.schedule_type) == ("batches.tasks.purge_expired", "D")


def test_nothing_goes_before_its_time(finished):
    report = purge_expired()
    assert (report.requests, report.batches, report.file_contents) == (0, 0, 0)


def test_a_month_later_uncurated_data_goes_and_curated_data_stays(finished):
    files_before = {f.pk: Path(f.content.path) for f in File.objects.all()}
    report = purge_expired(now=a_month_later())

    # Kept: the starred, annotated, preferred and rejected results, and their batches.
    kept = set(Request.objects.values_list("pk", flat=True))
    assert kept == {r.pk for r in finished["rows"][:3]} | {finished["rejected"].pk}
    assert report.kept_curated == 4 and report.requests == 8 - 4
    assert set(Batch.objects.values_list("pk", flat=True)) == {
        finished["first"].pk,
        finished["second"].pk,
    }
    # Every file's bytes are gone; the rows the kept batches name remain, marked deleted.
    assert report.file_contents == len(files_before)
    assert not any(path.exists() for path in files_before.values())
    assert File.objects.filter(deleted_at__isnull=True).count() == 0

    # The recorded export still downloads, and can be made again from what was kept.
    export = finished["export"]
    assert exports.export_path(export, "finetuning_data.jsonl").exists()
    again = exports.export_create(
        params={"format": "finetuning", "starred": "yes"}, user=None, origin="command"
    )
    assert again.rows == export.rows == 1


def test_batches_with_nothing_curated_go_whole(openai_client, q_sync):
    file = openai_client.files.create(file=("in.jsonl", chat_requests(2)), purpose="batch")
    openai_client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    report = purge_expired(now=a_month_later())
    assert (report.batches, report.requests) == (1, 2)
    assert not Batch.objects.exists() and not Request.objects.exists() and not File.objects.exists()
    assert report.files == 2  # the input and the output file records


def test_the_dry_run_changes_nothing(finished):
    before = (
        Request.objects.count(),
        Batch.objects.count(),
        File.objects.filter(deleted_at=None).count(),
    )
    report = purge_expired(now=a_month_later(), dry_run=True)
    assert report.requests == 4 and report.dry_run
    assert (
        Request.objects.count(),
        Batch.objects.count(),
        File.objects.filter(deleted_at=None).count(),
    ) == before
    assert all(Path(f.content.path).exists() for f in File.objects.all())


def test_the_dry_run_reports_what_the_purge_then_does(finished, monkeypatch):
    # One row to a transaction, so every chunk boundary is crossed.
    monkeypatch.setattr("batches.purge.DELETE_CHUNK", 1)
    would = purge_expired(now=a_month_later(), dry_run=True).as_dict()
    did = purge_expired(now=a_month_later()).as_dict()
    assert {**would, "dry_run": False} == did
    assert (did["requests"], did["batches"], did["kept_curated"]) == (4, 0, 4)
    assert Request.objects.count() == 4


def test_a_result_starred_during_the_purge_is_kept(finished, carol, monkeypatch):
    """The purge lists what to delete, then deletes it chunk by chunk: a star
    given in between (a reviewer at work during the nightly run) still counts."""
    late = finished["second"].requests.exclude(pk=finished["rejected"].pk).first()
    real_atomic = transaction.atomic
    starred = []

    def atomic_after_a_star(*args, **kwargs):
        if not starred:
            starred.append(Star.objects.create(request=late, user=carol))
        return real_atomic(*args, **kwargs)

    monkeypatch.setattr("batches.purge.transaction.atomic", atomic_after_a_star)
    report = purge_expired(now=a_month_later())
    assert Request.objects.filter(pk=late.pk).exists() and late.stars.exists()
    assert report.requests == 3


def test_the_command_reports_what_it_would_do(finished):
    Batch.objects.update(created_at=timezone.now() - timedelta(days=40))  # the data ages instead
    out = StringIO()
    call_command("purge_expired", "--dry-run", stdout=out)
    assert "Would delete 4 results" in out.getvalue() and "kept 4 curated" in out.getvalue()
    assert Request.objects.count() == 8
    call_command("purge_expired", stdout=StringIO())
    assert Request.objects.count() == 4


def test_an_expired_output_file_is_a_clear_404(finished, openai_client):
    batch = openai_client.batches.retrieve(finished["second"].public_id)
    File.objects.filter(public_id=batch.output_file_id).update(expires_at=timezone.now())
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.files.content(batch.output_file_id)
    assert raised.value.body["code"] == "file_expired"
    assert "expired" in raised.value.body["message"]
