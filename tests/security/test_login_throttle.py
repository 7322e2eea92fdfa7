"""Failed logins are throttled on the viewer's and the admin's login (django-axes).

After five wrong passwords for one username from one address, that pair is
refused for fifteen minutes, even with the right password; the lockout ends by
itself, or at once with `manage.py axes_reset`.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from curation.logins import client_ip

LOGIN = "/admin/login/"


def log_in(browser: Client, password: str, *, username: str = "carol", **extra):
    return browser.post(
        LOGIN + "?next=/results/", {"username": username, "password": password}, **extra
    )


def logged_in(browser: Client) -> bool:
    return "_auth_user_id" in browser.session


def fail(browser: Client, times: int, **extra) -> None:
    for attempt in range(1, times + 1):
        response = log_in(browser, "wrong", **extra)
        # The form again, with its error; the try that reaches the limit is told it is locked.
        assert response.status_code == (429 if attempt == settings.AXES_FAILURE_LIMIT else 200)
        assert not logged_in(browser)


def test_the_sixth_try_is_refused_even_with_the_right_password(carol):
    browser = Client()
    fail(browser, settings.AXES_FAILURE_LIMIT)

    refused = log_in(browser, "carol-pw")

    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.content
    assert not logged_in(browser)


def test_a_lockout_ends_after_its_cool_off(carol):
    browser = Client()
    fail(browser, settings.AXES_FAILURE_LIMIT)
    assert log_in(browser, "carol-pw").status_code == 429

    # The cool-off has passed (moved in the database rather than waited for).
    later = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=later)

    response = log_in(browser, "carol-pw")
    assert response.status_code == 302 and response["Location"] == "/results/"
    assert logged_in(browser)
    assert AccessAttempt.objects.count() == 0  # a right password clears the count


def test_an_operator_unlocks_with_axes_reset(carol):
    browser = Client()
    fail(browser, settings.AXES_FAILURE_LIMIT)
    assert log_in(browser, "carol-pw").status_code == 429

    call_command("axes_reset_username", "carol")

    assert log_in(browser, "carol-pw").status_code == 302
    assert logged_in(browser)


def test_fewer_failures_than_the_limit_do_not_lock(carol):
    browser = Client()
    fail(browser, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(browser, "carol-pw").status_code == 302


def test_the_lockout_is_per_username_and_address(carol, dave):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    fail(attacker, settings.AXES_FAILURE_LIMIT, REMOTE_ADDR="203.0.113.9")
    assert log_in(attacker, "carol-pw", REMOTE_ADDR="203.0.113.9").status_code == 429
    # Carol from her own address, and another reviewer from the attacker's, log in.
    assert log_in(Client(), "carol-pw", REMOTE_ADDR="198.51.100.7").status_code == 302
    assert (
        log_in(Client(), "dave-pw", username="dave", REMOTE_ADDR="203.0.113.9").status_code == 302
    )


class FakeRequest:
    def __init__(self, remote: str, forwarded: str = ""):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize(
    ("quickstart", "remote", "forwarded", "counted"),
    [
        # Behind nginx on the host: the address nginx forwarded.
        (False, "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        (False, "::1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        # A header from anyone else, or in the quickstart, is the client's own claim.
        (False, "203.0.113.9", "10.0.0.1", "203.0.113.9"),
        (True, "127.0.0.1", "10.0.0.1", "127.0.0.1"),
        (False, "127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_the_address_counted_is_the_one_nginx_saw(settings, quickstart, remote, forwarded, counted):
    settings.QUICKSTART = quickstart
    assert client_ip(FakeRequest(remote, forwarded)) == counted
