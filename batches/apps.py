from django.apps import AppConfig
from django.db.models.signals import post_migrate

RECONCILE_SCHEDULE = "batchserver: reconcile"
PURGE_SCHEDULE = "batchserver: purge expired"
# Replaced by the workers' heartbeat threads (batches.pipeline.workers).
RETIRED_SCHEDULES = ["batchserver: engine heartbeat"]


def ensure_schedules(**kwargs) -> None:
    """The periodic work, kept in step after every migrate (and flush) rather
    than in a data migration, so no schedule can go missing:

    - the reconciler, every minute on the default (control) cluster;
    - the retention purge, daily on the control cluster.

    Workers beat, and engine workers load their model, on their own
    (batches.pipeline.workers), not on a schedule.
    """
    from django_q.models import Schedule

    Schedule.objects.filter(name__in=RETIRED_SCHEDULES).delete()
    for name, func, every in (
        (RECONCILE_SCHEDULE, "batches.tasks.reconcile", Schedule.MINUTES),
        (PURGE_SCHEDULE, "batches.tasks.purge_expired", Schedule.DAILY),
    ):
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": every,
                "minutes": 1 if every == Schedule.MINUTES else None,
                "repeats": -1,
                "cluster": None,
            },
        )


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from batches.pipeline.workers import worker_started

        post_migrate.connect(ensure_schedules, sender=self)
        post_spawn.connect(worker_started, dispatch_uid="batches.worker_started")
