from django.apps import AppConfig


class CurationConfig(AppConfig):
    """Stars, annotations and the viewer's pages (see issue 3)."""

    name = "curation"
    verbose_name = "Curation"
