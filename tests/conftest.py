"""Fixtures every test can use: personas, API clients, the tiny model, subprocess settings.

Plain helpers are not here: test data is in tests/factories.py, process and
waiting helpers in tests/helpers.py.
"""

import os
import threading
from io import StringIO
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command

from batches.services import api_key_create
from tests import helpers


@pytest.fixture(autouse=True)
def fail_on_thread_death(monkeypatch):
    """A thread that dies with an exception fails its test: at the next wait_for,
    or at the latest when the test ends, with the thread's name and cause."""
    helpers.thread_failures.clear()
    previous = threading.excepthook

    def record(args: threading.ExceptHookArgs) -> None:
        helpers.thread_failures.append(args)
        previous(args)

    monkeypatch.setattr(threading, "excepthook", record)
    yield
    try:
        helpers.raise_thread_failures()
    finally:
        helpers.thread_failures.clear()


# Fixtures that open the database to a test; pytest-django refuses database
# access to every other test.
DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def uses_the_database(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("django_db")) or bool(
        DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config, items):
    """`make test`'s PostgreSQL pass (DATABASE_TESTS_ONLY=1) runs the tests that
    can reach the database. The others cannot (pytest-django blocks them) and
    already ran in the SQLite pass: the real engines, the model conversion and
    the pure units, a few minutes of CI time."""
    if os.environ.get("DATABASE_TESTS_ONLY") != "1":
        return
    kept = [item for item in items if uses_the_database(item)]
    left = [item for item in items if not uses_the_database(item)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.hookimpl(tryfirst=True, wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test (rep_setup, rep_call, rep_teardown).

    Fixtures read it at teardown to leave evidence of a failure: the browser
    tests a screenshot and the page's HTML in test-artifacts/, the process
    tests their servers' logs.
    """
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


@pytest.fixture
def alice_key(alice) -> str:
    return api_key_create(owner=alice, name="alice")[1]


@pytest.fixture
def bob_key(bob) -> str:
    return api_key_create(owner=bob, name="bob")[1]


@pytest.fixture
def api_url(live_server, settings) -> str:
    """The live server, answering with the API's URLconf (port 4080's surface)."""
    settings.ROOT_URLCONF = settings.API_URLCONF
    return f"{live_server.url}/v1"


@pytest.fixture
def openai_client(api_url, alice_key):
    import openai

    return openai.OpenAI(base_url=api_url, api_key=alice_key, max_retries=0)


@pytest.fixture
def q_sync(monkeypatch):
    """Run django-q2 tasks inline as they are enqueued (after commit)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture(scope="session")
def tiny_model(django_db_blocker):
    """The tiny random-weight model, built once per test session (~4 s)."""
    call_command("make_tiny_model", "--if-missing", verbosity=0)
    return settings.TINY_MODEL_DIR


@pytest.fixture(scope="session")
def instruct_model(django_db_blocker):
    """The quickstart's real instruct model (~25 s to convert), kept in the
    checkout's ignored .test-models/ so that the PostgreSQL pass and later runs
    reuse it; the command rebuilds it if its recorded source differs."""
    path = settings.BASE_DIR / ".test-models" / settings.INSTRUCT_MODEL_NAME
    call_command("make_instruct_model", "--path", str(path), stdout=StringIO())
    return path


@pytest.fixture
def subprocess_env(transactional_db) -> dict:
    """Environment for server and worker subprocesses: the test database and DATA_DIR."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
        url = f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "batchserver.settings_test",
    }


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("aris")


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", password="carol-pw", is_staff=True)


@pytest.fixture
def dave(django_user_model):
    return django_user_model.objects.create_user("dave", password="dave-pw", is_staff=True)


@pytest.fixture
def carol_client(client, carol):
    client.force_login(carol)
    return client


@pytest.fixture
def processes(tmp_path, request):
    procs = helpers.Processes(tmp_path)
    yield procs
    procs.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(procs.logs())
