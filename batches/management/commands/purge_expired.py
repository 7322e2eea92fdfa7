from django.conf import settings
from django.core.management.base import BaseCommand

from batches.purge import purge_expired


class Command(BaseCommand):
    help = "Delete files, batches and results older than RETENTION_DAYS; keep curated ones."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would go; change nothing."
        )

    def handle(self, *args, dry_run: bool, **options):
        report = purge_expired(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {report.requests} results, {report.batches} batches, "
            f"{report.file_contents} files' contents ({report.files} file records) older than "
            f"{settings.RETENTION_DAYS} days; kept {report.kept_curated} curated results."
        )
