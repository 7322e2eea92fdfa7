from django.apps import AppConfig
from django.db.models.signals import post_migrate

RECONCILE_SCHEDULE = "batchserver: reconcile"
ENGINE_HEARTBEAT_SCHEDULE = "batchserver: engine heartbeat"
PURGE_SCHEDULE = "batchserver: purge expired"


def ensure_schedules(**kwargs) -> None:
    """The periodic work, kept in step after every migrate (and flush) rather
    than in a data migration, so no schedule can go missing:

    - the reconciler, every minute on the default (control) cluster;
    - an engine heartbeat, every minute on the engine cluster (it also loads
      the model on an idle worker);
    - the retention purge, daily on the control cluster.
    """
    from django_q.models import Schedule

    for name, func, cluster, every in (
        (RECONCILE_SCHEDULE, "batches.tasks.reconcile", None, Schedule.MINUTES),
        (ENGINE_HEARTBEAT_SCHEDULE, "batches.tasks.engine_heartbeat", "engine", Schedule.MINUTES),
        (PURGE_SCHEDULE, "batches.tasks.purge_expired", None, Schedule.DAILY),
    ):
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": every,
                "minutes": 1 if every == Schedule.MINUTES else None,
                "repeats": -1,
                "cluster": cluster,
            },
        )


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self)
