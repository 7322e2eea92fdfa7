"""The curation API on the viewer's port, for reviewer tokens only (agents and scripts)."""

urlpatterns: list = []
