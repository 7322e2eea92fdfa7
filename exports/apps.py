from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Training-set exports: ICL, fine-tuning, preference, CSV (see issue 4)."""

    name = "exports"
    verbose_name = "Exports"
