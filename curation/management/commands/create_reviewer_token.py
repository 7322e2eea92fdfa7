from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from curation.tokens import token_create


class Command(BaseCommand):
    help = "Create a reviewer token (curation API) for a user, created if missing; print it once."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The reviewer, a person or an agent, e.g. 'agent-1'.")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--no-create-user",
            action="store_true",
            help="Fail instead of creating the user when it does not exist.",
        )

    def handle(self, *args, username: str, name: str, no_create_user: bool, **options):
        if len(name) > 100:
            raise CommandError("--name is at most 100 characters.")
        users = get_user_model().objects
        with transaction.atomic():
            user = users.filter(username=username).first()
            if user is None:
                if no_create_user:
                    raise CommandError(f"No user named {username!r}.")
                # An agent account: no password (it cannot log in to the viewer) and
                # not staff; the token is its only way in, to the curation API alone.
                user = users.create_user(username=username)
                self.stderr.write(f"Created user {username!r} (no password, agent account).")
            elif not user.is_active:
                raise CommandError(f"User {username!r} is inactive; its tokens would not work.")
            token, raw = token_create(user=user, name=name)
        self.stderr.write(
            f"Reviewer token {token.pk} for {username!r}. "
            "It is shown once and stored only as a hash:"
        )
        self.stdout.write(raw)
