"""`manage.py demo`: real evaluations in the viewer, from one command, the way Aris submits.

It makes a demo API user with a fresh key and a staff reviewer with a fresh
password, then uploads the same candidate screenings (batches/demo.py) twice
through the running API with the official `openai` SDK: once greedy, once
sampled, so that the compare page has two sides. The server (`make run`) runs
them; this command only submits, and with --wait polls until both end.
"""

import contextlib
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import openai
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse

from batches import demo
from batches.models import ApiKey, Batch
from batches.services import api_key_create, api_keys_revoke

API_USER = "demo"
REVIEWER = "demo-reviewer"
KEY_NAME = "demo"
# The viewer's routes by name. ROOT_URLCONF names the same module on the viewer
# and in this command, but not in a process serving the API's URLconf (tests).
VIEWER_URLCONF = "batchserver.urls.viewer"
# Where `serve` binds when API_BIND / VIEWER_BIND are unset (deploy/gunicorn/*.py).
API_BIND_DEFAULT = "127.0.0.1:4080"
VIEWER_BIND_DEFAULT = "127.0.0.1:8001"
POLL_SECONDS = 2.0
PROGRESS_SECONDS = 10.0


@dataclass(frozen=True)
class Accounts:
    raw_key: str
    password: str
    created: list[str]


@dataclass(frozen=True)
class Submitted:
    sampling: demo.Sampling
    batch_id: str
    file_id: str


class Command(BaseCommand):
    help = "Submit ~200 candidate screenings through the API, greedy and sampled, for the viewer."

    def add_arguments(self, parser):
        parser.add_argument(
            "--api-url",
            help=f"The API's base URL (default: http://API_BIND/v1, API_BIND={API_BIND_DEFAULT}).",
        )
        parser.add_argument(
            "--viewer-url",
            help=f"The viewer's URL, for the links (default: http://VIEWER_BIND/, "
            f"VIEWER_BIND={VIEWER_BIND_DEFAULT}).",
        )
        parser.add_argument(
            "--size",
            type=int,
            default=200,
            help="Candidate profiles per batch, 1 to MAX_BATCH_REQUESTS (default: 200).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=42,
            help="Makes the profiles and the sampled batch reproducible (default: 42).",
        )
        parser.add_argument(
            "--model", help="A model from GET /v1/models (default: the first one listed)."
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Poll until both batches end, showing progress (default: submit and return).",
        )

    def handle(
        self,
        *args,
        api_url: str | None,
        viewer_url: str | None,
        size: int,
        seed: int,
        model: str | None,
        wait: bool,
        **options,
    ):
        # Every argument is checked, and the API asked, before anything is written.
        if not 1 <= size <= settings.MAX_BATCH_REQUESTS:
            raise CommandError(
                f"--size must be from 1 to {settings.MAX_BATCH_REQUESTS:,} "
                f"(a batch's limit, MAX_BATCH_REQUESTS); got {size:,}."
            )
        api_url = _url(api_url, "--api-url") if api_url else _bind_url("API_BIND") + "/v1"
        viewer_url = _url(viewer_url, "--viewer-url") if viewer_url else _bind_url("VIEWER_BIND")
        _check_reachable(api_url)

        accounts = _accounts()
        client = openai.OpenAI(base_url=api_url, api_key=accounts.raw_key)
        with _api_errors(api_url):
            model = _model(client, model)
            people = demo.profiles(size, seed)
            self.stdout.write(
                f'Demo: {size:,} candidate profiles (seed {seed}) screened for "{demo.JOB_TITLE}" '
                f"on {model}, twice."
            )
            submitted = [
                _submit(client, people, model=model, sampling=sampling, seed=seed)
                for sampling in demo.samplings(seed)
            ]
        self._links(accounts, submitted, api_url=api_url, viewer_url=viewer_url)
        if wait:
            with _api_errors(api_url):
                self._wait(client, submitted)
        ids = ", ".join(f"{s.batch_id} ({s.sampling.label})" for s in submitted)
        self.stdout.write(f"Submitted 2 batches of {size:,} requests on {model}: {ids}.")

    def _links(
        self, accounts: Accounts, submitted: list[Submitted], *, api_url: str, viewer_url: str
    ) -> None:
        def page(name: str, query: list[tuple[str, str]] | None = None) -> str:
            path = reverse(name, urlconf=VIEWER_URLCONF)
            return f"{viewer_url}{path}" + (f"?{urlencode(query)}" if query else "")

        say = self.stdout.write
        if accounts.created:
            say(f"Created {' and '.join(accounts.created)}.")
        else:
            say(f"Reused the users {API_USER!r} and {REVIEWER!r}.")
        say("")
        for s in submitted:
            say(f"  {s.sampling.label:<8} {s.batch_id}  {s.sampling.describe()}; input {s.file_id}")
        say("")
        say(f"In the viewer, log in as {REVIEWER} with the password {accounts.password}")
        say(f"  dashboard  {page('dashboard')}")
        for s in submitted:
            say(f"  results    {page('results', [('batch', s.batch_id)])}")
        say(f"  compare    {page('compare', [('batch', s.batch_id) for s in submitted])}")
        say(f"  export     {page('exports')}")
        say("")
        say("With the SDK, once a batch is completed:")
        say("  from openai import OpenAI")
        say(f'  client = OpenAI(base_url="{api_url}", api_key="{accounts.raw_key}")')
        say(f'  batch = client.batches.retrieve("{submitted[0].batch_id}")')
        say("  print(client.files.content(batch.output_file_id).text)")
        say("")
        say(
            "The password and the key are shown once. Running `manage.py demo` again reuses "
            "both users, gives them a new password and key (the old ones stop working) and "
            "submits two new batches."
        )

    def _wait(self, client: openai.OpenAI, submitted: list[Submitted]) -> None:
        """Poll until both batches end; Ctrl-C or SIGTERM stops the waiting, not the batches."""
        stop = threading.Event()
        with _stopped_by_signals(stop):
            shown, shown_statuses, shown_at = "", [""], 0.0
            while True:
                batches = [client.batches.retrieve(s.batch_id) for s in submitted]
                statuses: list[str] = [b.status for b in batches]
                line = " · ".join(
                    f"{s.sampling.label} {_progress(b)}"
                    for s, b in zip(submitted, batches, strict=True)
                )
                # A line per change of status, and for counts at most every few seconds.
                now = time.monotonic()
                if line != shown and (
                    statuses != shown_statuses or now - shown_at >= PROGRESS_SECONDS
                ):
                    self.stdout.write(line)
                    shown, shown_statuses, shown_at = line, statuses, now
                if all(status in Batch.TERMINAL_STATUSES for status in statuses):
                    break
                if stop.wait(POLL_SECONDS):
                    self.stdout.write("Stopped waiting; the batches keep running on the server.")
                    return
        for s, batch in zip(submitted, batches, strict=True):
            summary = f"{s.sampling.label} {batch.id}: {batch.status}"
            if batch.output_file_id:
                with client.with_streaming_response.files.content(batch.output_file_id) as output:
                    summary += f"; {demo.tally(output.iter_lines())}"
            if batch.errors and batch.errors.data:
                summary += f"; {batch.errors.data[0].message}"
            self.stdout.write(summary)


def _progress(batch) -> str:
    counts = batch.request_counts
    if counts is None or not counts.total:
        return batch.status
    return f"{batch.status} {counts.completed + counts.failed:,}/{counts.total:,}"


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Set `stop` on SIGINT or SIGTERM while inside, then restore the handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _url(value: str, option: str) -> str:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise CommandError(f"{option} is not an http(s) URL: {value!r}.") from None
    return value.rstrip("/")


def _bind_url(variable: str) -> str:
    """The local URL of what `serve` binds to from `variable`, as deploy/gunicorn reads it."""
    default = API_BIND_DEFAULT if variable == "API_BIND" else VIEWER_BIND_DEFAULT
    bind = os.environ.get(variable) or default
    host, colon, port = bind.rpartition(":")
    option = "--api-url" if variable == "API_BIND" else "--viewer-url"
    if not colon or not port.isdigit() or bind.startswith("unix:"):
        raise CommandError(f"{variable}={bind!r} is not host:port: pass {option}.")
    # A server bound to every address answers on the loopback one.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"http://{host}:{port}"


def _check_reachable(api_url: str) -> None:
    """Ask the API for its models without a key: a 401 in OpenAI's shape is an API that answers."""
    probe = openai.OpenAI(base_url=api_url, api_key="demo-probe", max_retries=0, timeout=30)
    try:
        probe.models.list()
    except openai.AuthenticationError:
        return
    except openai.APIConnectionError:
        raise CommandError(
            f"No API answers at {api_url}: start the server with `make run` (in another "
            "terminal), or pass --api-url."
        ) from None
    except openai.APIStatusError as error:
        raise CommandError(
            f"{api_url} is not a Batch Server API (GET /models answered {error.status_code})."
        ) from None


@transaction.atomic
def _accounts() -> Accounts:
    """The demo's API user with a new key and its reviewer with a new password.

    Only a key's hash is stored, so an earlier demo key cannot be shown again:
    it is revoked and replaced, and the user keeps its batches.
    """
    users = get_user_model().objects
    created = []
    user = users.filter(username=API_USER).first()
    if user is None:
        # API only: no password, so it cannot log in to the viewer.
        user = users.create_user(API_USER)
        created.append(f"the API user {API_USER!r}")
    reviewer = users.filter(username=REVIEWER).first()
    if reviewer is None:
        reviewer = users.create_user(REVIEWER, is_staff=True)
        created.append(f"the reviewer {REVIEWER!r} (staff, for the viewer)")
    for account in (user, reviewer):
        if not account.is_active:
            raise CommandError(
                f"The user {account.username!r} is deactivated; activate it in the admin "
                "to run the demo."
            )

    api_keys_revoke(ApiKey.objects.filter(owner=user, name=KEY_NAME))
    _, raw_key = api_key_create(owner=user, name=KEY_NAME)
    password = secrets.token_urlsafe(12)
    reviewer.set_password(password)
    reviewer.is_staff = True  # the viewer lets staff in only
    reviewer.save(update_fields=["password", "is_staff"])
    # Failed logins may have locked the reviewer out; the new password must let it in.
    axes_reset(username=REVIEWER)
    return Accounts(raw_key=raw_key, password=password, created=created)


def _model(client: openai.OpenAI, requested: str | None) -> str:
    served = [m.id for m in client.models.list()]
    if not served:
        raise CommandError("The API serves no model (see MODELS in deploy/.env.example).")
    if requested is None:
        return served[0]
    if requested not in served:
        raise CommandError(f"Model {requested!r} is not served here (served: {', '.join(served)}).")
    return requested


def _submit(
    client: openai.OpenAI,
    people: list[demo.Profile],
    *,
    model: str,
    sampling: demo.Sampling,
    seed: int,
) -> Submitted:
    """Upload the input file and create its batch, as a client of the API would."""
    # A spooled file keeps the 50,000-line maximum (some 100 MB) off the heap.
    with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as content:
        content.writelines(demo.input_lines(people, model=model, sampling=sampling))
        content.seek(0)
        name = f"demo-screening-{sampling.label}-seed{seed}.jsonl"
        input_file = client.files.create(file=(name, content), purpose="batch")
    batch = client.batches.create(
        input_file_id=input_file.id,
        endpoint=demo.ENDPOINT,
        completion_window="24h",
        metadata={
            "demo": sampling.label,
            "job": demo.JOB_TITLE,
            "sampling": sampling.describe(),
            "seed": str(seed),
        },
    )
    return Submitted(sampling=sampling, batch_id=batch.id, file_id=input_file.id)


@contextlib.contextmanager
def _api_errors(api_url: str) -> Iterator[None]:
    """The API's errors as one line each, without a traceback."""
    try:
        yield
    except openai.APIConnectionError:
        raise CommandError(
            f"The API at {api_url} stopped answering: is `make run` still running?"
        ) from None
    except openai.AuthenticationError:
        raise CommandError(
            f"The API at {api_url} does not know the demo key: it must use this command's "
            "database (DATABASE_URL, DATA_DIR), or a later `manage.py demo` replaced the key."
        ) from None
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        message = body.get("message") or error.message
        raise CommandError(f"The API answered {error.status_code}: {message}") from None
