"""Agreement between reviewers, disagreements and adjudication (session login, staff)."""

urlpatterns: list = []
