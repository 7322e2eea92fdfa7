from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Training-set exports: ICL, fine-tuning, preference, CSV and batch input, recorded."""

    name = "exports"
    verbose_name = "Exports"
