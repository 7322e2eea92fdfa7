"""Review queues in the viewer: list, create, work (session login, staff)."""

urlpatterns: list = []
