from django.apps import AppConfig
from django.db.models.signals import post_migrate

RECONCILE_SCHEDULE = "batchserver: reconcile"


def ensure_reconcile_schedule(**kwargs) -> None:
    """The reconciler runs every minute on the default (control) cluster.

    Kept in step after every migrate (and flush), rather than in a data
    migration, so the schedule cannot go missing.
    """
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=RECONCILE_SCHEDULE,
        defaults={
            "func": "batches.tasks.reconcile",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"

    def ready(self) -> None:
        post_migrate.connect(ensure_reconcile_schedule, sender=self)
