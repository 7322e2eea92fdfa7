"""Write a dataset: select, validate row by row, stream to disk, record.

Rows are read with a database iterator and written one at a time, so memory
stays flat however large the export. The files and the metadata.json manifest
are written into a scratch directory, which is moved into place inside the
transaction that records the export, just before it commits: a recorded export
always has its files and its manifest, and a failed one leaves neither.
"""

import csv
import io
import random
import secrets
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from django import forms
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.http import QueryDict
from django.utils import timezone

from batches.engines import served_models
from batches.files import file_sha256
from batches.models import Request
from core.exceptions import ApplicationError
from core.text import clipped
from curation.models import Annotation, Preference, Star, annotation_of
from exports import formats, tabular
from exports.filters import ExportFilter
from exports.models import Export, ExportFormat

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The manifest lists this many skipped rows as examples; it counts them all.
MAX_SKIPPED_EXAMPLES = 50
MANIFEST = "metadata.json"


class ExportError(ApplicationError):
    """The export cannot be made as asked; the message says why."""

    code = "invalid_export"


class ExportOptionsForm(forms.Form):
    """Options beyond the filter; which apply depends on the format."""

    format = forms.ChoiceField(choices=ExportFormat.choices)
    limit = forms.IntegerField(min_value=1, max_value=100_000, required=False)
    token_budget = forms.IntegerField(min_value=1, required=False)
    split = forms.FloatField(min_value=0.01, max_value=0.5, required=False)
    seed = forms.IntegerField(required=False)
    # Not "model", which filters the results by the model that produced them.
    target_model = forms.CharField(max_length=200, required=False)

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        if data.get("format") == ExportFormat.BATCH_INPUT:
            target = data.get("target_model")
            if not target:
                raise forms.ValidationError(
                    "A batch input export needs target_model, the model to run it on."
                )
            if target not in served_models():
                raise forms.ValidationError(
                    f"Model {target!r} is not served here ({', '.join(served_models())})."
                )
        if data.get("format") == ExportFormat.ICL and data.get("limit") is None:
            data["limit"] = 100
        return data


@dataclass
class Selection:
    options: dict
    params: dict
    rows: QuerySet  # results, or preferences for the preference format


def export_selection(*, params: QueryDict | dict, user: "User | None") -> Selection:
    """Validate the options and filter, and return what the export would read."""
    params = params.dict() if isinstance(params, QueryDict) else dict(params)
    options = ExportOptionsForm(params)
    if not options.is_valid():
        raise ExportError(_form_errors(options))
    results = Request.objects.filter(status=Request.Status.COMPLETED)
    filters = ExportFilter(params, queryset=results, user=user)
    if not filters.is_valid():
        raise ExportError(_form_errors(filters.form))
    export_format = options.cleaned_data["format"]
    if export_format == ExportFormat.PREFERENCE:
        rows = _preferences(filters, params)
    else:
        rows = _results(export_format, filters.qs)
    recorded = {k: v for k, v in filters.data.items() if v not in ("", None)}
    return Selection(options=options.cleaned_data, params=recorded, rows=rows)


def export_count(*, params: QueryDict | dict, user: "User | None") -> int:
    """How many rows the export will hold, before per-row validation."""
    selection = export_selection(params=params, user=user)
    count = selection.rows.count()
    if selection.options.get("limit") is not None:
        count = min(count, selection.options["limit"])
    return count


def _results(export_format: str, results: QuerySet) -> QuerySet:
    results = results.select_related("batch", "annotation", "annotation__edited_by")
    if export_format == ExportFormat.ICL:
        # Best first: quality, then how many reviewers starred it.
        return results.annotate(star_count=Count("stars")).order_by(
            F("annotation__quality").desc(nulls_last=True), "-star_count", "pk"
        )
    return results.order_by("pk")


def _preferences(filters: ExportFilter, params) -> QuerySet:
    """Preferences whose winner passes the filter; one line per distinct pair."""
    preferences = Preference.objects.filter(chosen__in=filters.qs.values("pk"))
    if reviewer := filters.form.cleaned_data.get("starred_by"):
        preferences = preferences.filter(user=reviewer)
    return preferences.select_related("chosen__batch", "rejected__batch").order_by(
        "chosen_id", "rejected_id", "pk"
    )


@dataclass
class _Output:
    """One file being written."""

    path: Path
    handle: io.BufferedWriter
    rows: int = 0


@dataclass
class _Report:
    included: list[int] = field(default_factory=list)
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def skip(self, custom_id: str, reason: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_SKIPPED_EXAMPLES:
            self.examples.append({"custom_id": custom_id, "reason": reason})


def export_create(
    *,
    params: QueryDict | dict,
    user: "User | None",
    origin: str,
    progress: Callable[[int], None] | None = None,
) -> Export:
    selection = export_selection(params=params, user=user)
    export_format = selection.options["format"]
    with _scratch_directory(export_format) as scratch:
        report, files = _write(selection, scratch, progress)
        if report.rows == 0 and not report.skipped:
            raise ExportError("Nothing matches this filter: there is nothing to export.")
        return _record(
            scratch=scratch,
            export_format=export_format,
            params=selection.params,
            user=user,
            origin=origin,
            files=files,
            report=report,
        )


def export_record_content(
    *,
    content: bytes,
    filename: str,
    result_ids: list[int],
    params: dict,
    user: "User | None",
    origin: str,
) -> Export:
    """Record a CSV export made elsewhere (the admin's django-import-export action)."""
    with _scratch_directory(ExportFormat.CSV) as scratch:
        path = scratch / filename
        path.write_bytes(content)
        report = _Report(included=result_ids, rows=len(result_ids))
        files = [
            {
                "name": filename,
                "rows": report.rows,
                "bytes": len(content),
                "sha256": file_sha256(path),
            }
        ]
        return _record(
            scratch=scratch,
            export_format=ExportFormat.CSV,
            params=params,
            user=user,
            origin=origin,
            files=files,
            report=report,
        )


@contextmanager
def _scratch_directory(export_format: str) -> Iterator[Path]:
    """A scratch directory (its name starts with a dot) for an export's files.

    _record moves it into place; if the block ends without that (an error,
    nothing to export), it is removed.
    """
    name = f"{timezone.now():%Y%m%d-%H%M%S}-{export_format}-{secrets.token_hex(3)}"
    scratch = exports_root() / f".{name}"
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _record(
    *,
    scratch: Path,
    export_format: str,
    params: dict,
    user: "User | None",
    origin: str,
    files: list[dict],
    report: _Report,
) -> Export:
    """The Export row and its results, committed with the files and the
    metadata.json manifest already in place: the row is made first (the
    manifest names its id), the manifest written beside the files, and the
    directory moved into place, all before the transaction commits. A failure
    at any step leaves neither a row nor a directory.

    Durable: an outer transaction could still roll the row back after the
    directory was moved into place.
    """
    name = scratch.name.lstrip(".")
    final = exports_root() / name
    skipped = sum(report.skipped.values())
    try:
        with transaction.atomic(durable=True):
            export = Export.objects.create(
                format=export_format,
                params=params,
                user=user,
                origin=origin,
                directory=name,
                files=files,
                rows=report.rows,
                skipped=skipped,
            )
            through = Export.results.through
            for start in range(0, len(report.included), 1000):
                through.objects.bulk_create(
                    through(export_id=export.pk, request_id=pk)
                    for pk in report.included[start : start + 1000]
                )
            manifest = {
                "id": export.pk,
                "format": export_format,
                "params": params,
                "created_at": export.created_at.isoformat(),
                "created_by": user.get_username() if user else None,
                "origin": origin,
                "rows": report.rows,
                "files": files,
                "skipped": {
                    "rows": skipped,
                    "reasons": dict(report.skipped),
                    "examples": report.examples,
                },
            }
            (scratch / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            scratch.rename(final)
    except BaseException:
        # Moved, but the row did not commit: the files go too (a crash in
        # this window leaves an unlisted directory, never a row without files).
        shutil.rmtree(final, ignore_errors=True)
        raise
    return export


def exports_root() -> Path:
    root = Path(settings.DATA_DIR) / "gold_star" / "exports"
    root.mkdir(parents=True, exist_ok=True)
    return root


def export_path(export: Export, name: str) -> Path:
    """The path of one of the export's files; only names it recorded are served."""
    if name not in {f["name"] for f in export.files} | {MANIFEST}:
        raise FileNotFoundError(name)
    return exports_root() / export.directory / name


def _write(selection: Selection, directory: Path, progress) -> tuple[_Report, list[dict]]:
    options = selection.options
    export_format = options["format"]
    report = _Report()
    names = {
        ExportFormat.ICL: ["icl_examples.jsonl"],
        ExportFormat.FINETUNING: ["train.jsonl", "validation.jsonl"]
        if options.get("split")
        else ["finetuning_data.jsonl"],
        ExportFormat.PREFERENCE: ["preference_pairs.jsonl"],
        ExportFormat.CSV: ["results.csv"],
        ExportFormat.BATCH_INPUT: ["batch_input.jsonl"],
    }[export_format]
    outputs = [_Output(directory / n, open(directory / n, "wb")) for n in names]  # noqa: SIM115
    try:
        if export_format == ExportFormat.CSV:
            outputs[0].handle.write(_csv_line(tabular.HEADER))
        for output, ids, line in _lines(selection, report):
            target = outputs[output]
            target.handle.write(line)
            target.rows += 1
            report.rows += 1
            report.included.extend(ids)
            if progress:
                progress(report.rows)
    finally:
        for opened in outputs:
            opened.handle.close()
    files = [
        {
            "name": o.path.name,
            "rows": o.rows,
            "bytes": o.path.stat().st_size,
            "sha256": file_sha256(o.path),
        }
        for o in outputs
    ]
    return report, files


def _lines(selection: Selection, report: _Report) -> Iterator[tuple[int, list[int], bytes]]:
    """(output index, result ids, bytes) for every valid row, in export order."""
    options = selection.options
    export_format = options["format"]
    chunked = selection.rows.iterator(chunk_size=1000)

    if export_format == ExportFormat.PREFERENCE:
        previous = None
        for preference in chunked:
            pair = (preference.chosen_id, preference.rejected_id)
            if pair == previous:
                continue  # the same pair, preferred by another reviewer
            previous = pair
            try:
                record = formats.preference_record(preference)
            except formats.Invalid as invalid:
                report.skip(preference.chosen.custom_id, str(invalid))
                continue
            yield 0, list(pair), orjson.dumps(record) + b"\n"
        return

    tokens, seen_inputs, endpoint = 0, set(), None
    for curated in _curated(chunked, with_curation=export_format in _CURATED_FORMATS):
        result = curated.result
        try:
            if export_format == ExportFormat.ICL:
                record = formats.icl_record(curated)
            elif export_format == ExportFormat.FINETUNING:
                record = formats.finetuning_record(result)
            elif export_format == ExportFormat.BATCH_INPUT:
                endpoint = endpoint or result.batch.endpoint
                if result.batch.endpoint != endpoint:
                    raise formats.Invalid(f"a {result.batch.endpoint} request among {endpoint}")
                if result.custom_id in seen_inputs:
                    raise formats.Invalid("the same custom_id (input) is already in the file")
                seen_inputs.add(result.custom_id)
                record = formats.batch_input_record(
                    result, model=options["target_model"], endpoint=endpoint
                )
            else:
                yield 0, [result.pk], _csv_line(tabular.csv_row(curated))
                continue
        except formats.Invalid as invalid:
            report.skip(result.custom_id, str(invalid))
            continue

        if export_format == ExportFormat.ICL:
            if report.rows >= options["limit"]:
                return
            size = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
            budget = options.get("token_budget")
            if budget is not None and tokens + size > budget:
                return  # best first: the set stops where the budget does
            tokens += size
        output = 0
        if export_format == ExportFormat.FINETUNING and options.get("split"):
            # Seeded per row, so the split is stable while streaming.
            draw = random.Random(f"{options.get('seed') or 0}:{result.pk}").random()
            output = 1 if draw < options["split"] else 0
        yield output, [result.pk], orjson.dumps(record) + b"\n"


_CURATED_FORMATS = (ExportFormat.ICL, ExportFormat.CSV)


def _curated(results: Iterator[Request], *, with_curation: bool) -> Iterator[formats.Curated]:
    """The results with their stars and tags, read 1,000 rows at a time."""
    for chunk in _batched(results, 1000):
        stars, tags = defaultdict(list), defaultdict(list)
        if with_curation:
            ids = [result.pk for result in chunk]
            for request_id, reviewer, at in (
                Star.objects.filter(request_id__in=ids)
                .order_by("created_at")
                .values_list("request_id", "user__username", "created_at")
            ):
                stars[request_id].append((reviewer, at))
            for request_id, name in Annotation.tags.through.objects.filter(
                annotation_id__in=ids
            ).values_list("annotation_id", "tag__name"):
                tags[request_id].append(name)
        for result in chunk:
            yield formats.Curated(
                result=result,
                annotation=annotation_of(result),
                tags=sorted(tags[result.pk]),
                stars=stars[result.pk],
            )


def _batched(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_line(cells: list) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()


def _form_errors(form: forms.Form) -> str:
    # Iterating an ErrorList yields messages (str), not the ValidationErrors
    # django-stubs declares. Django's messages repeat the value sent ("Select a
    # valid choice. <value> is not…"): each is clipped, so a huge value is not echoed.
    return "; ".join(
        clipped(f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors))  # type: ignore[arg-type]
        for name, errors in form.errors.items()
    )
