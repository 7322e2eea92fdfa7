from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.db import transaction

from batches.services import api_key_create
from batches.webhooks import loggable_url


class Command(BaseCommand):
    help = "Create an API key for a user (created if missing) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username", help="Owner of the key, e.g. 'aris'.")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument(
            "--webhook-url", default="", help="POSTed to when this key's batches end (signed)."
        )
        parser.add_argument(
            "--no-create-user",
            action="store_true",
            help="Fail instead of creating the user when it does not exist.",
        )

    def handle(
        self, *args, username: str, name: str, webhook_url: str, no_create_user: bool, **options
    ):
        # Every argument is checked before anything is written: a bad URL leaves
        # no user behind.
        try:
            URLValidator(schemes=["http", "https"])(webhook_url) if webhook_url else None
        except ValidationError:
            raise CommandError("--webhook-url is not an http(s) URL (https://host/path).") from None
        users = get_user_model().objects
        with transaction.atomic():
            user = users.filter(username=username).first()
            if user is None:
                if no_create_user:
                    raise CommandError(f"No user named {username!r}.")
                # An API-only user: no password, so it cannot log in to the viewer.
                user = users.create_user(username=username)
                self.stderr.write(f"Created user {username!r} (no password, API only).")
            api_key, raw_key = api_key_create(owner=user, name=name, webhook_url=webhook_url)
        if webhook_url:
            self.stderr.write(
                f"Webhooks go to {loggable_url(webhook_url)}, signed with "
                f"{api_key.webhook_secret} (HMAC-SHA256; see the README)."
            )
        self.stderr.write(
            f"API key {api_key.pk} for {username!r}. It is shown once and stored only as a hash:"
        )
        self.stdout.write(raw_key)
