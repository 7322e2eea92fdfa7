from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from batches.models import Request, as_text, excerpt


class ExportFormat(models.TextChoices):
    ICL = "icl", "In-context learning (JSONL)"
    FINETUNING = "finetuning", "Fine-tuning, OpenAI chat format (JSONL)"
    PREFERENCE = "preference", "Preference pairs, OpenAI DPO format (JSONL)"
    CSV = "csv", "CSV for analysis"
    BATCH_INPUT = "batch_input", "Batch API input, to re-run on another model (JSONL)"


class ExportOrigin(models.TextChoices):
    VIEWER = "viewer"
    COMMAND = "command"
    ADMIN = "admin"


class Export(models.Model):
    """One dataset written: who, when, what and how, with the files' checksums.

    The files live in `directory` under DATA_DIR/gold_star/exports/, beside a
    metadata.json manifest holding the same facts. The results that went into
    it are linked, so retention never removes what an export needs.
    """

    Format = ExportFormat
    Origin = ExportOrigin

    format = models.CharField(max_length=20, choices=ExportFormat.choices)
    params = models.JSONField(help_text="Filters and options, as given.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    origin = models.CharField(max_length=10, choices=ExportOrigin.choices)
    created_at = models.DateTimeField(default=timezone.now)
    directory = models.CharField(max_length=200, help_text="Relative to the exports root.")
    files = models.JSONField(help_text="[{name, rows, bytes, sha256}]")
    rows = models.PositiveIntegerField()
    skipped = models.PositiveIntegerField(help_text="Rows left out as invalid for the format.")
    results = models.ManyToManyField(Request, related_name="exports", blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=ExportFormat.values), name="exports_export_format_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.rows} rows)"

    @property
    def param_pairs(self) -> list[tuple[str, str]]:
        """The recorded params as (name, value) text, cut short, for pages: a list,
        so that a param named "items" cannot stand in for the dict's method."""
        params = self.params if isinstance(self.params, dict) else {}
        return [(str(name), excerpt(as_text(value), 80)) for name, value in params.items()]
