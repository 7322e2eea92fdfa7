from django.apps import AppConfig


class CurationConfig(AppConfig):
    """Stars, annotations, tags and preferences, and the viewer's pages and JSON endpoints."""

    name = "curation"
    verbose_name = "Curation"
