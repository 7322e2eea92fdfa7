from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from batches.engines.tiny_model import build_tiny_model


class Command(BaseCommand):
    help = "Build the tiny random-weight chat model (offline) for the quickstart and tests."

    def add_arguments(self, parser):
        parser.add_argument(
            "--path",
            type=Path,
            default=settings.TINY_MODEL_DIR,
            help="Where to write it (default: DATA_DIR/models/tiny-chat).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Same seed, same model.")
        parser.add_argument(
            "--if-missing", action="store_true", help="Do nothing if the model already exists."
        )
        parser.add_argument(
            "--if-served",
            action="store_true",
            help="Do nothing unless the tiny model is among the served MODELS (the default).",
        )

    def handle(self, *args, path: Path, seed: int, if_missing: bool, if_served: bool, **options):
        if if_served and settings.TINY_MODEL_NAME not in settings.SERVED_MODELS:
            self.stdout.write("A model is configured (MODELS); the tiny model is not needed.")
            return
        if if_missing and (path / "config.json").exists():
            self.stdout.write(f"Tiny model already at {path}.")
            return
        build_tiny_model(path, seed=seed)
        size = sum(f.stat().st_size for f in path.iterdir())
        self.stdout.write(f"Built the tiny model at {path} ({size / 2**20:.1f} MiB).")
