"""SQLite's search triggers read only the messages that are objects: a stored body
whose `messages` held a bare string made json_extract() fail, and with it the
write of the result."""

from django.db import migrations

from curation import search


def reinstall(apps, schema_editor):
    search.reinstall_triggers(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("curation", "0002_search")]

    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
