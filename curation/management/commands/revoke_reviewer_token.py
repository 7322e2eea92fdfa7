from django.core.management.base import BaseCommand, CommandError

from curation.models import ReviewerToken
from curation.tokens import tokens_revoke


class Command(BaseCommand):
    help = "Revoke reviewer tokens: one by the id create_reviewer_token printed, or a user's all."

    def add_arguments(self, parser):
        parser.add_argument("target", help="A token id; with --all, a username.")
        parser.add_argument(
            "--all",
            dest="all_tokens",
            action="store_true",
            help="Revoke every token of the user named by TARGET.",
        )

    def handle(self, *args, target: str, all_tokens: bool, **options):
        if all_tokens:
            tokens = ReviewerToken.objects.filter(user__username=target)
        elif target.isascii() and target.isdigit() and int(target) < 2**63:
            tokens = ReviewerToken.objects.filter(pk=int(target))
        else:
            raise CommandError(
                f"{target[:64]!r} is not a token id; to revoke a user's tokens add --all."
            )
        if not tokens.exists():
            raise CommandError(f"No such token: {target[:64]!r}.")
        revoked = tokens_revoke(tokens)
        self.stdout.write(f"Revoked {revoked} token(s); their next request is answered 401.")
