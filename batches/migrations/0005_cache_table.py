"""The database cache table behind per-key rate limits (settings.CACHES["throttle"])."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("batches", "0004_imported_batches")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
