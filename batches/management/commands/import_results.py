import signal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from batches.importing import ResultsImportError, results_import
from batches.models import Batch


class Interrupted(Exception):
    pass


class Command(BaseCommand):
    help = "Import a batch output JSONL (ours or vllm run-batch's) as a batch to review."

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="The batch output JSONL file.")
        parser.add_argument(
            "--input",
            type=Path,
            help="The batch input JSONL the outputs answer: request bodies by custom_id.",
        )
        parser.add_argument(
            "--owner", default="import", help="Username owning the batch (created if missing)."
        )
        parser.add_argument("--model", help="The model's name, when the output lines do not say.")
        parser.add_argument(
            "--endpoint",
            default=Batch.Endpoint.CHAT_COMPLETIONS,
            choices=Batch.Endpoint.values,
        )

    def handle(
        self,
        *args,
        output: Path,
        input: Path | None,
        owner: str,
        model: str | None,
        endpoint: str,
        **options,
    ):
        for path in (output, input):
            if path is not None and not path.is_file():
                raise CommandError(f"No such file: {path}")
        users = get_user_model().objects
        user = users.filter(username=owner).first()
        if user is None:
            # No password: the owner of imported batches cannot log in anywhere.
            user = users.create_user(username=owner)
            self.stderr.write(f"Created user {owner!r} (no password).")

        def interrupt(signum, frame):
            raise Interrupted

        self._progress_shown = False
        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            report = results_import(
                output_path=output,
                input_path=input,
                owner=user,
                model=model,
                endpoint=endpoint,
                progress=self._progress,
            )
        except ResultsImportError as error:
            raise CommandError(str(error)) from None
        except (Interrupted, KeyboardInterrupt):
            raise CommandError("Interrupted; nothing was imported.") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self._progress_shown:
                self.stderr.write("")

        if report.already_imported:
            self.stdout.write(
                f"{output.name} was already imported as {report.batch_id} "
                f"({report.imported} results); nothing changed."
            )
            return
        for skipped in report.skipped_lines:
            self.stderr.write(f"line {skipped.line}: {skipped.reason}")
        if report.skipped > len(report.skipped_lines):
            self.stderr.write(f"… and {report.skipped - len(report.skipped_lines)} more")
        self.stdout.write(
            f"Imported {report.imported} results ({report.completed} completed, "
            f"{report.failed} failed) as {report.batch_id}; {report.skipped} lines skipped."
        )

    def _progress(self, lines: int) -> None:
        if lines % 1000 == 0 and self.stderr.isatty():
            self.stderr.write(f"\r{lines:,} lines…", ending="")
            self._progress_shown = True
