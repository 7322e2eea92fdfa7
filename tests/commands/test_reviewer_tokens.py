"""create_reviewer_token and revoke_reviewer_token."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.bearer import secret_hash
from curation.models import ReviewerToken
from curation.tokens import token_create

pytestmark = pytest.mark.django_db


def create(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_reviewer_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def works(raw: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/queues").status_code == 200


def test_it_creates_an_agent_account_and_prints_the_token_once(django_user_model):
    raw, err = create("agent-1", "--name", "screening agent")
    assert raw.startswith("rt-bs-") and "\n" not in raw
    token = ReviewerToken.objects.get()
    assert token.key_hash == secret_hash(raw) and token.name == "screening agent"
    assert raw not in err and f"Reviewer token {token.pk}" in err
    agent = django_user_model.objects.get(username="agent-1")
    assert token.user == agent
    assert not agent.has_usable_password() and not agent.is_staff
    assert works(raw)


def test_it_adds_a_token_to_an_existing_user(carol):
    raw, err = create("carol")
    assert ReviewerToken.objects.get().user == carol
    assert "Created user" not in err
    assert carol.has_usable_password()
    assert works(raw)


def test_it_can_refuse_unknown_and_inactive_users(django_user_model):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        create("nobody", "--no-create-user")
    django_user_model.objects.create_user("gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        create("gone")
    assert not ReviewerToken.objects.exists()
    assert not django_user_model.objects.filter(username="nobody").exists()


def test_it_revokes_one_token_by_id(agent_user):
    first, raw_first = token_create(user=agent_user)
    _, raw_second = token_create(user=agent_user)
    out = StringIO()
    call_command("revoke_reviewer_token", str(first.pk), stdout=out)
    assert "Revoked 1 token(s)" in out.getvalue()
    assert not works(raw_first) and works(raw_second)


def test_it_revokes_every_token_of_a_user(agent_user, carol):
    raws = [token_create(user=agent_user)[1] for _ in range(2)]
    carols = token_create(user=carol)[1]
    out = StringIO()
    call_command("revoke_reviewer_token", "agent-1", "--all", stdout=out)
    assert "Revoked 2 token(s)" in out.getvalue()
    assert not any(works(raw) for raw in raws) and works(carols)


@pytest.mark.parametrize("target", ["999", "agent-1", str(2**64), "-1"])
def test_revoking_nothing_is_an_error(agent_user, target):
    token_create(user=agent_user)
    with pytest.raises(CommandError):
        call_command("revoke_reviewer_token", target, stdout=StringIO())
    assert not ReviewerToken.objects.filter(revoked_at__isnull=False).exists()


@pytest.fixture
def agent_user(django_user_model):
    return django_user_model.objects.create_user("agent-1")
