"""`manage.py demo`: its candidate screenings, and the two batches it submits through the API."""

import json
import re
from io import StringIO
from urllib.parse import urlsplit

import jsonschema
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from batches import demo
from batches.engines.params import parse_request
from batches.management.commands import demo as demo_command
from batches.models import ApiKey, Batch
from batches.pipeline.ingest import InputValidator, NewRequest
from tests.factories import CHAT, MODEL
from tests.helpers import free_port

LOGIN = "/admin/login/"


def demo_lines(size: int, seed: int, sampling: demo.Sampling, model: str = MODEL) -> list[bytes]:
    return list(demo.input_lines(demo.profiles(size, seed), model=model, sampling=sampling))


# --- The screenings (batches/demo.py) -------------------------------------------


def test_profiles_are_the_same_for_a_seed_and_differ_between_seeds():
    assert demo.profiles(50, seed=7) == demo.profiles(50, seed=7)
    assert demo.profiles(50, seed=7) != demo.profiles(50, seed=8)
    # A larger demo starts with the smaller one's candidates.
    assert demo.profiles(80, seed=7)[:50] == demo.profiles(50, seed=7)


def test_profiles_are_varied_with_strong_and_weak_fits():
    people = demo.profiles(200, seed=42)
    assert len({p.name for p in people}) > 150
    assert len({p.title for p in people}) > 10 and len({p.location for p in people}) > 8
    assert len({p.summary for p in people}) > 10 and len({p.education for p in people}) > 20
    strong = [p for p in people if p.years >= 7 and {"Python", "Django"} <= set(p.skills)]
    weak = [p for p in people if p.years <= 2 and "Python" not in p.skills]
    assert len(strong) >= 10 and len(weak) >= 10
    for person in people:
        text = person.text()
        assert person.name in text and person.summary in text
        assert 1 <= len(person.roles) <= 3 and person.skills
        # Modest prompts: with the rubric, a few hundred tokens.
        assert len(demo.RUBRIC) + len(text) < 2000


@pytest.mark.parametrize("sampling", demo.samplings(seed=3), ids=lambda s: s.label)
def test_every_line_is_a_valid_batch_input_line(sampling):
    validator = InputValidator(
        endpoint=CHAT, models=[MODEL], max_requests=settings.MAX_BATCH_REQUESTS
    )
    checked = [validator.check(n, raw) for n, raw in enumerate(demo_lines(200, 3, sampling), 1)]

    assert all(isinstance(request, NewRequest) for request in checked), checked
    custom_ids = [request.custom_id for request in checked]
    assert len(set(custom_ids)) == 200 and custom_ids[0] == "candidate-00001"
    for request in checked:
        parsed = parse_request(CHAT, request.body)
        assert parsed.options.json_schema == demo.EVALUATION_SCHEMA
        assert parsed.options.max_tokens == demo.MAX_TOKENS
        assert [m["role"] for m in parsed.messages] == ["system", "user"]
        assert parsed.messages[0]["content"] == demo.RUBRIC
        assert request.body["response_format"]["json_schema"]["strict"] is True
        assert {k: request.body[k] for k in sampling.params} == sampling.params


def test_the_two_samplings_share_their_inputs_and_differ_in_sampling():
    greedy, sampled = demo.samplings(seed=5)
    assert greedy.params == {"temperature": 0.0}
    assert sampled.params == {"temperature": 1.0, "top_p": 0.9, "seed": 5}
    first = [json.loads(line) for line in demo_lines(20, 5, greedy)]
    second = [json.loads(line) for line in demo_lines(20, 5, sampled)]
    for a, b in zip(first, second, strict=True):
        assert a["custom_id"] == b["custom_id"]
        assert a["body"]["messages"] == b["body"]["messages"]


def test_the_rubric_is_a_valid_json_schema_and_evaluation_agrees_with_it():
    jsonschema.Draft202012Validator.check_schema(demo.EVALUATION_SCHEMA)
    validator = jsonschema.Draft202012Validator(demo.EVALUATION_SCHEMA)
    good = ["9 years of Django", "Led a team of four"]
    answers = [
        {"reasons": good, "score": 88, "verdict": "strong_yes"},
        {"reasons": good[:1], "score": 0, "verdict": "no"},
        {"reasons": good, "score": 101, "verdict": "yes"},
        {"reasons": good, "score": 50.5, "verdict": "maybe"},
        {"reasons": good, "score": True, "verdict": "maybe"},
        {"reasons": good, "score": 60, "verdict": "hire"},
        {"reasons": [], "score": 60, "verdict": "maybe"},
        {"reasons": good * 2, "score": 60, "verdict": "maybe"},
        {"reasons": ["1", "2"], "score": 60, "verdict": "maybe"},
        {"reasons": ["x" * 121], "score": 60, "verdict": "maybe"},
        {"reasons": [7], "score": 60, "verdict": "maybe"},
        {"score": 60, "verdict": "maybe"},
        {"reasons": good, "score": 60, "verdict": "maybe", "extra": 1},
    ]
    for answer in answers:
        assert validator.is_valid(answer) == (demo.evaluation(json.dumps(answer)) is not None)
    assert demo.evaluation("echo: not JSON") is None
    assert "JSON only" in demo.RUBRIC and all(verdict in demo.RUBRIC for verdict in demo.VERDICTS)


def test_tally_counts_the_rubric_answers_in_an_output_file():
    def line(content) -> str:
        body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return json.dumps({"custom_id": "c", "response": {"status_code": 200, "body": body}})

    lines = [
        line(json.dumps({"reasons": ["10 years of Python"], "score": 90, "verdict": "strong_yes"})),
        line(json.dumps({"reasons": ["No backend work"], "score": 40, "verdict": "no"})),
        line("not JSON"),
        json.dumps({"custom_id": "d", "response": None, "error": {"message": "x"}}),
        "",
    ]
    tally = demo.tally(lines)
    assert (tally.answers, tally.scores) == (4, [90, 40])
    assert str(tally) == "2 of 4 answers fit the rubric (strong_yes 1, no 1; mean score 65)"
    assert str(demo.tally([line("echo")])) == "1 answers, none in the rubric's JSON"


# --- Bad input ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -3, 10**9])
def test_it_refuses_a_size_outside_a_batchs_limit(size, db):
    with pytest.raises(CommandError, match=r"--size must be from 1 to 50,000"):
        call_command("demo", "--size", str(size), stdout=StringIO())
    assert not get_user_model().objects.exists()


def test_it_says_to_start_the_server_when_no_api_answers(db):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(CommandError, match=r"No API answers at .*`make run`") as raised:
        call_command("demo", "--api-url", url, stdout=StringIO())
    assert url in str(raised.value)
    # Nothing is written for a server that is not there.
    assert not get_user_model().objects.exists() and not ApiKey.objects.exists()


@pytest.mark.parametrize("option", ["--api-url", "--viewer-url"])
def test_it_refuses_a_url_that_is_not_http(option, db):
    with pytest.raises(CommandError, match=f"{option} is not an http"):
        call_command("demo", option, "ftp://example.com/v1", stdout=StringIO())


def test_it_refuses_a_bind_it_cannot_reach(db, monkeypatch):
    monkeypatch.setenv("API_BIND", "unix:/run/api.sock")
    with pytest.raises(CommandError, match=r"API_BIND='unix:/run/api.sock' .* pass --api-url"):
        call_command("demo", stdout=StringIO())


def test_it_names_the_served_models_when_the_model_is_not_served(api_url):
    with pytest.raises(CommandError, match=r"'gpt-4o' is not served here \(served: tiny-chat\)"):
        call_command("demo", "--api-url", api_url, "--model", "gpt-4o", stdout=StringIO())
    assert not Batch.objects.exists()


# --- End to end: the live API, real workers, the viewer --------------------------


@pytest.fixture
def workers(processes, subprocess_env):
    """The control and engine clusters on the test engine, as `serve` runs them."""
    env = {**subprocess_env, "ENGINE": "test"}
    processes.qcluster(env)
    processes.qcluster(env, cluster="engine")
    return processes


def run_demo(api_url: str, *args: str) -> str:
    out = StringIO()
    call_command("demo", "--api-url", api_url, "--size", "20", *args, stdout=out)
    return out.getvalue()


def viewer_path(output: str, page: str) -> str:
    """The path and query of a link the command printed, e.g. `compare`."""
    url = re.search(rf"^  {page} +(\S+)$", output, re.MULTILINE).group(1)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://viewer.test"
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def log_in(password: str) -> Client:
    browser = Client()
    response = browser.post(LOGIN, {"username": "demo-reviewer", "password": password})
    assert response.status_code == 302, "the reviewer could not log in"
    return browser


@pytest.mark.subprocess
def test_demo_submits_the_same_screenings_twice_and_the_reviewer_compares_them(
    api_url, workers, settings, monkeypatch
):
    monkeypatch.setattr(demo_command, "POLL_SECONDS", 0.2)

    output = run_demo(api_url, "--viewer-url", "http://viewer.test/", "--wait")

    greedy, sampled = Batch.objects.order_by("pk")
    assert (greedy.status, sampled.status) == ("completed", "completed"), workers.logs()
    assert (greedy.metadata["demo"], sampled.metadata["demo"]) == ("greedy", "sampled")
    assert greedy.model == sampled.model == MODEL
    assert greedy.input_file.filename == "demo-screening-greedy-seed42.jsonl"
    custom_ids = {b: set(b.requests.values_list("custom_id", flat=True)) for b in (greedy, sampled)}
    assert custom_ids[greedy] == custom_ids[sampled] and len(custom_ids[greedy]) == 20
    assert greedy.requests.filter(status="completed").count() == 20
    first = sampled.requests.get(custom_id="candidate-00001")
    assert (first.body["temperature"], first.body["seed"]) == (1.0, 42)
    assert greedy.requests.get(custom_id="candidate-00001").body["temperature"] == 0.0

    demo_user = get_user_model().objects.get(username="demo")
    reviewer = get_user_model().objects.get(username="demo-reviewer")
    assert greedy.owner == sampled.owner == demo_user
    assert not demo_user.has_usable_password() and reviewer.is_staff
    assert "Created the API user 'demo' and the reviewer 'demo-reviewer'" in output
    assert f"greedy {greedy.public_id}: completed; 20 answers" in output
    assert output.rstrip().endswith(
        f"Submitted 2 batches of 20 requests on {MODEL}: "
        f"{greedy.public_id} (greedy), {sampled.public_id} (sampled)."
    )

    # The SDK snippet's key works; the reviewer's password opens the viewer.
    raw_key = re.search(r'api_key="(sk-bs-[^"]+)"', output).group(1)
    assert ApiKey.objects.get(key_hash=ApiKey.hash(raw_key)).owner == demo_user
    password = re.search(r"log in as demo-reviewer with the password (\S+)$", output, re.M)[1]
    settings.ROOT_URLCONF = "batchserver.urls.viewer"  # the API's live server is done
    browser = log_in(password)
    compare = viewer_path(output, "compare")
    assert compare == f"/compare/?batch={greedy.public_id}&batch={sampled.public_id}"
    page = browser.get(compare)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="candidate') == 2 and "candidate-00001" in html
    assert "echo: Candidate:" in html  # the test engine's answer, on both sides
    for name in ("dashboard", "results", "export"):
        assert browser.get(viewer_path(output, name)).status_code == 200

    # Again: the same users, a new key and password, two new batches.
    settings.ROOT_URLCONF = settings.API_URLCONF
    again = run_demo(api_url, "--viewer-url", "http://viewer.test")
    assert "Reused the users 'demo' and 'demo-reviewer'" in again
    assert get_user_model().objects.filter(username__startswith="demo").count() == 2
    assert Batch.objects.count() == 4
    new = Batch.objects.order_by("pk")[2:]
    assert [b.metadata["demo"] for b in new] == ["greedy", "sampled"]
    assert {b.owner for b in new} == {demo_user}
    assert ApiKey.objects.filter(owner=demo_user, revoked_at__isnull=True).count() == 1
    assert ApiKey.objects.get(key_hash=ApiKey.hash(raw_key)).revoked_at is not None
    new_password = re.search(r"with the password (\S+)$", again, re.M)[1]
    assert new_password != password
    settings.ROOT_URLCONF = "batchserver.urls.viewer"
    log_in(new_password)
