"""The CSV export's columns: one definition for the streaming export and for the
admin's "export selected" (django-import-export)."""

from collections.abc import Callable

from import_export import resources
from import_export.fields import Field

from batches.models import Request
from exports.formats import Curated

# A spreadsheet runs a cell that starts with one of these as a formula (CWE-1236);
# prefixing a quote makes it text, which is what it was.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _annotated(getter: Callable) -> Callable:
    def read(curated: Curated):
        return getter(curated.annotation) if curated.annotation else None

    return read


COLUMNS: list[tuple[str, Callable[[Curated], object]]] = [
    ("result_id", lambda c: c.result.pk),
    ("batch_id", lambda c: c.result.batch.public_id),
    ("model", lambda c: c.result.batch.model),
    ("custom_id", lambda c: c.result.custom_id),
    ("line", lambda c: c.result.line),
    ("status", lambda c: c.result.status),
    ("status_code", lambda c: c.result.status_code),
    ("prompt", lambda c: c.result.prompt_text),
    ("response", lambda c: c.result.response_text),
    ("prompt_tokens", lambda c: c.result.prompt_tokens),
    ("completion_tokens", lambda c: c.result.completion_tokens),
    ("latency_ms", lambda c: c.result.latency_ms),
    ("finished_at", lambda c: c.result.finished_at.isoformat() if c.result.finished_at else None),
    ("quality", _annotated(lambda a: a.quality)),
    ("category", _annotated(lambda a: a.category)),
    ("tags", lambda c: "; ".join(c.tags)),
    ("notes", _annotated(lambda a: a.notes)),
    ("edited_by", _annotated(lambda a: a.edited_by.get_username() if a.edited_by else None)),
    ("edited_at", _annotated(lambda a: a.edited_at.isoformat())),
    ("stars", lambda c: len(c.stars)),
    ("starred_by", lambda c: "; ".join(reviewer for reviewer, _ in c.stars)),
]

HEADER = [name for name, _ in COLUMNS]


def csv_row(curated: Curated) -> list[str]:
    return [safe_cell(read(curated)) for _, read in COLUMNS]


def _resource_field(name: str, read: Callable[[Curated], object]) -> Field:
    return Field(
        column_name=name,
        dehydrate_method=lambda result: safe_cell(read(Curated.of(result))),
    )


# The CSV columns as a django-import-export resource, declared field by field
# (the admin's export form lists a resource's declared fields).
ResultResource = type(
    "ResultResource",
    (resources.ModelResource,),
    {
        "__doc__": "The CSV columns for django-import-export, formula-safe like the CSV export.",
        "__module__": __name__,
        "Meta": type(
            "Meta", (), {"model": Request, "fields": tuple(HEADER), "export_order": tuple(HEADER)}
        ),
        **{name: _resource_field(name, read) for name, read in COLUMNS},
    },
)
