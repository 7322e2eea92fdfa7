"""SQLite's write-ahead log stays bounded: the size limit is set on every
connection, the reconciler truncates a log that grew past it, and streamed
reads hold no snapshot for as long as a client reads."""

import sqlite3
from pathlib import Path

import pytest
from django.db import connection

from batches.models import Heartbeat, Request
from batches.pipeline.finalize import output_lines
from batches.pipeline.reconcile import truncate_sqlite_wal
from tests.factories import make_batch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write-ahead log"),
]


def wal() -> Path:
    return Path(f"{connection.settings_dict['NAME']}-wal")


def other_connection() -> sqlite3.Connection:
    return sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)


def test_every_connection_limits_the_log(settings):
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_size_limit")
        assert cursor.fetchone()[0] == settings.SQLITE_WAL_LIMIT
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert 0 < settings.SQLITE_WAL_LIMIT <= 256 * 2**20


def test_the_reconciler_truncates_a_log_a_reader_let_grow(settings):
    settings.SQLITE_WAL_LIMIT = 64 * 1024
    reader = other_connection()
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM batches_heartbeat").fetchone()  # holds a snapshot
    for i in range(200):
        Heartbeat.objects.create(name=f"grow-{i}", beat_at="2026-01-01T00:00Z", details="x" * 4000)
    grown = wal().stat().st_size
    assert grown > settings.SQLITE_WAL_LIMIT
    reader.execute("COMMIT")
    reader.close()

    assert truncate_sqlite_wal() == grown
    assert wal().stat().st_size == 0
    assert truncate_sqlite_wal() == 0  # nothing past the limit: nothing to do


def test_streaming_partial_results_holds_no_snapshot(owner):
    batch = make_batch(owner, count=5000)
    Request.objects.filter(batch=batch).update(status=Request.Status.COMPLETED)
    lines = output_lines(batch)
    next(lines)  # a client read the first line and is slow to read on

    other = other_connection()
    other.execute("INSERT INTO batches_heartbeat (name, beat_at, details) VALUES ('w', 0, '{}')")
    busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    other.close()
    assert busy == 0
    assert sum(1 for _ in lines) == 4999
