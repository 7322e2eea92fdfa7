from django.core.management.base import BaseCommand, CommandError

from batches.models import ApiKey
from batches.services import api_keys_revoke


class Command(BaseCommand):
    help = "Revoke API keys: by the id create_api_key printed, or every key of a user."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("key_id", nargs="?", type=int, help="The key's id.")
        target.add_argument("--user", help="Revoke every key this user owns.")

    def handle(self, *args, key_id: int | None, user: str | None, **options):
        if user is not None:
            keys = ApiKey.objects.filter(owner__username=user)
        else:
            keys = ApiKey.objects.filter(pk=key_id)
        if not keys.exists():
            raise CommandError(f"No such key: {user or key_id}.")
        revoked = api_keys_revoke(keys)
        self.stdout.write(f"Revoked {revoked} key(s); their next request is answered 401.")
