"""Agreement between reviewers, disagreements and adjudication (session login, staff)."""

from django.urls import path

from curation import agreement_views as views

urlpatterns = [
    path("", views.index, name="agreement"),
    path("queues/<int:pk>/", views.queue_agreement, name="agreement-queue"),
    path("queues/<int:pk>/disagreements/", views.disagreements, name="agreement-disagreements"),
    path("results/<int:pk>/settle", views.settle, name="agreement-settle"),
]
