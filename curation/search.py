"""Full-text search over completed results: the prompt (all but system messages,
which a batch shares) and the response.

No text is copied at ingest. On PostgreSQL a stored generated column,
`search_document`, holds a tsvector of a completed row (computed by the
database from the JSON columns), with a GIN index; being a real column it has
statistics, so the planner walks the newest rows for a common word and uses the
index for a rare one. The model does not declare it: it exists on PostgreSQL
only. On SQLite a contentless FTS5 table is kept in step by triggers that fire
when a result completes (or is deleted), computing the same text from the JSON.
Search is word-based: every word must appear.

The expressions here are installed by migration curation 0002 (and SQLite's
triggers again by 0003); changing them takes a new migration.
"""

import re

from django.db import connections
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

# --- PostgreSQL -------------------------------------------------------------


_PG_DOCUMENT = (
    "CASE WHEN status = 'completed' THEN ("
    "jsonb_to_tsvector('simple', jsonb_path_query_array(body, "
    "'$.messages[*] ? (@.role != \"system\").content'), '[\"string\"]') || "
    "jsonb_to_tsvector('simple', jsonb_path_query_array(response, "
    "'$.choices[*].message.content') || "
    "jsonb_path_query_array(response, '$.choices[*].text'), '[\"string\"]')) END"
)
_PG_INSTALL = [
    "ALTER TABLE batches_request ADD COLUMN search_document tsvector "
    f"GENERATED ALWAYS AS ({_PG_DOCUMENT}) STORED",
    "CREATE INDEX curation_request_search ON batches_request USING gin (search_document)",
]
_PG_UNINSTALL = [
    "DROP INDEX IF EXISTS curation_request_search",
    "ALTER TABLE batches_request DROP COLUMN IF EXISTS search_document",
]

# --- SQLite -----------------------------------------------------------------


def _sqlite_prompt(row: str) -> str:
    # Only object elements: json_extract() raises on a bare string, and a stored
    # body may hold anything (a failed write would lose the result).
    return (
        "(SELECT group_concat(json_extract(m.value, '$.content'), char(10)) "
        f"FROM json_each({row}.body, '$.messages') AS m "
        "WHERE m.type = 'object' AND json_extract(m.value, '$.role') <> 'system')"
    )


def _sqlite_response(row: str) -> str:
    return (
        f"coalesce(json_extract({row}.response, '$.choices[0].message.content'), "
        f"json_extract({row}.response, '$.choices[0].text'), '')"
    )


def _sqlite_add(row: str) -> str:
    return (
        "INSERT INTO curation_search (rowid, prompt, response) "
        f"SELECT {row}.id, {_sqlite_prompt(row)}, {_sqlite_response(row)} "
        f"WHERE {row}.status = 'completed';"
    )


def _sqlite_remove(row: str) -> str:
    # A contentless table forgets a row when given the same text it indexed.
    return (
        "INSERT INTO curation_search (curation_search, rowid, prompt, response) "
        f"SELECT 'delete', {row}.id, {_sqlite_prompt(row)}, {_sqlite_response(row)} "
        f"WHERE {row}.status = 'completed';"
    )


_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER curation_search_insert AFTER INSERT ON batches_request BEGIN "
    f"{_sqlite_add('new')} END",
    f"CREATE TRIGGER curation_search_update AFTER UPDATE OF status, body, response "
    f"ON batches_request BEGIN {_sqlite_remove('old')} {_sqlite_add('new')} END",
    f"CREATE TRIGGER curation_search_delete AFTER DELETE ON batches_request BEGIN "
    f"{_sqlite_remove('old')} END",
]
_SQLITE_DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS curation_search_insert",
    "DROP TRIGGER IF EXISTS curation_search_update",
    "DROP TRIGGER IF EXISTS curation_search_delete",
]
_SQLITE_INSTALL = [
    "CREATE VIRTUAL TABLE curation_search USING fts5("
    "prompt, response, content='', tokenize='unicode61 remove_diacritics 2')",
    *_SQLITE_TRIGGERS,
]
_SQLITE_UNINSTALL = [*_SQLITE_DROP_TRIGGERS, "DROP TABLE IF EXISTS curation_search"]


def install(schema_editor) -> None:
    statements = {"postgresql": _PG_INSTALL, "sqlite": _SQLITE_INSTALL}
    for sql in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


def uninstall(schema_editor) -> None:
    statements = {"postgresql": _PG_UNINSTALL, "sqlite": _SQLITE_UNINSTALL}
    for sql in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


def reinstall_triggers(schema_editor) -> None:
    """Replace SQLite's triggers with the current ones (migration 0003); the
    index keeps its rows, whose text the new triggers compute alike."""
    if schema_editor.connection.vendor == "sqlite":
        for sql in [*_SQLITE_DROP_TRIGGERS, *_SQLITE_TRIGGERS]:
            schema_editor.execute(sql)


def filter_results(queryset: QuerySet, text: str) -> QuerySet:
    """Completed results whose prompt or response holds every word of `text`.

    An empty search (no words) filters nothing.
    """
    words = re.findall(r"\w+", text)
    if not words:
        return queryset
    vendor = connections[queryset.db].vendor
    if vendor == "postgresql":
        # A condition on the row itself, not an id subquery, so the planner
        # can choose between the index and a walk down the newest rows.
        condition = RawSQL(
            '"batches_request"."search_document" @@ plainto_tsquery(\'simple\', %s)',
            [" ".join(words)],
            output_field=BooleanField(),
        )
        return queryset.filter(condition)
    if vendor == "sqlite":
        # Each word quoted: FTS5 operators in user text are taken literally.
        query = " ".join(f'"{word}"' for word in words)
        ids = RawSQL("SELECT rowid FROM curation_search WHERE curation_search MATCH %s", [query])
        return queryset.filter(pk__in=ids)
    raise NotImplementedError(f"No full-text search for {vendor}")
