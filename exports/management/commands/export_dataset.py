import shutil
import signal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from exports import services
from exports.filters import PRESETS
from exports.models import ExportFormat


class Interrupted(Exception):
    pass


class Command(BaseCommand):
    help = "Export curated results (ICL, fine-tuning, preference, CSV, batch input); recorded."

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument(
            "-o",
            "--output",
            default="-",
            help="File to write, '-' for stdout, a directory for --split.",
        )
        parser.add_argument("--user", help="Staff username to record as the exporter.")
        filters = parser.add_argument_group("filters (combined)")
        filters.add_argument("--filter", choices=[p for p, _ in PRESETS], default="all")
        filters.add_argument(
            "--stars",
            choices=["yes", "any"],
            default="yes",
            help="Gold-starred only (default) or every completed result.",
        )
        filters.add_argument("--starred-by", help="Username of the reviewer who starred.")
        filters.add_argument("--quality-min", type=int)
        filters.add_argument("--quality-max", type=int)
        filters.add_argument("--category")
        filters.add_argument("--tag")
        filters.add_argument("--model", help="Results produced by this model.")
        filters.add_argument("--batch", help="Results of this batch (batch_…).")
        filters.add_argument("--search", help="Words every prompt or response must hold.")
        options = parser.add_argument_group("format options")
        options.add_argument("--limit", type=int, help="ICL: how many examples (default 100).")
        options.add_argument("--token-budget", type=int, help="ICL: tokens for the whole set.")
        options.add_argument("--split", type=float, help="Fine-tuning: validation share.")
        options.add_argument("--seed", type=int, default=0, help="Fine-tuning: split seed.")
        options.add_argument("--target-model", help="Batch input: the model to re-run on.")

    def handle(self, *args, **options):
        users = get_user_model().objects
        user = None
        if options["user"]:
            user = users.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        params = {
            "format": options["format"],
            "filter": options["filter"],
            "starred": options["stars"],
            "quality_min": options["quality_min"],
            "quality_max": options["quality_max"],
            "category": options["category"],
            "tag": options["tag"],
            "model": options["model"],
            "batch": options["batch"],
            "q": options["search"],
            "limit": options["limit"],
            "token_budget": options["token_budget"],
            "split": options["split"],
            "seed": options["seed"],
            "target_model": options["target_model"],
        }
        if options["starred_by"]:
            reviewer = users.filter(username=options["starred_by"]).first()
            if reviewer is None:
                raise CommandError(f"No user named {options['starred_by']!r}.")
            params["starred_by"] = reviewer.pk
        params = {k: v for k, v in params.items() if v is not None}
        if options["split"] and options["output"] == "-":
            raise CommandError("A split export writes two files: give --output DIRECTORY.")

        def interrupt(signum, frame):
            raise Interrupted

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            export = services.export_create(
                params=params, user=user, origin="command", progress=self._progress
            )
        except services.ExportError as error:
            raise CommandError(str(error)) from None
        except (Interrupted, KeyboardInterrupt):
            raise CommandError("Interrupted; nothing was recorded.") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        self._copy_out(export, options["output"])
        self.stderr.write(
            f"\rExport {export.pk}: {export.rows} rows, {export.skipped} skipped "
            f"({', '.join(f['name'] + ' sha256 ' + f['sha256'][:12] for f in export.files)}); "
            f"kept in {services.exports_root() / export.directory}"
        )

    def _progress(self, rows: int) -> None:
        if rows % 1000 == 0 and self.stderr.isatty():
            self.stderr.write(f"\r{rows:,} rows…", ending="")

    def _copy_out(self, export, output: str) -> None:
        names = [f["name"] for f in export.files]
        if output == "-":
            with open(services.export_path(export, names[0]), encoding="utf-8") as source:
                while block := source.read(1 << 20):
                    self.stdout.write(block, ending="")
            self.stdout.flush()
            return
        target = Path(output)
        if len(names) > 1:
            target.mkdir(parents=True, exist_ok=True)
            for name in [*names, services.MANIFEST]:
                shutil.copyfile(services.export_path(export, name), target / name)
        else:
            shutil.copyfile(services.export_path(export, names[0]), target)
