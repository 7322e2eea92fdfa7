"""Review queues in the viewer: list, create, work (session login, staff)."""

from django.urls import path

from curation import queue_views

urlpatterns = [
    path("", queue_views.queue_list, name="queues"),
    path("new", queue_views.queue_new, name="queue-new"),
    path("<int:pk>/", queue_views.queue_detail, name="queue-detail"),
    path("<int:pk>/next", queue_views.queue_next, name="queue-next"),
    path("<int:pk>/items/<int:item_id>/", queue_views.queue_item, name="queue-item"),
    path(
        "<int:pk>/items/<int:item_id>/submit",
        queue_views.queue_item_submit,
        name="queue-item-submit",
    ),
    path("<int:pk>/items/<int:item_id>/skip", queue_views.queue_item_skip, name="queue-item-skip"),
]
