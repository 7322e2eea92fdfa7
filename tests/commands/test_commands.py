import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from io import StringIO
from types import SimpleNamespace

import httpx
import psutil
import pytest
from django.conf import settings
from django.core.management import call_command

from batches.models import ApiKey
from tests.helpers import free_port, wait_for


def test_create_api_key_prints_the_key_once_and_stores_its_hash(django_user_model):
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "aris", "--name", "production", stdout=out, stderr=err)
    raw_key = out.getvalue().strip()

    api_key = ApiKey.objects.get()
    assert raw_key.startswith("sk-bs-") and len(raw_key) > 40
    assert api_key.key_hash == ApiKey.hash(raw_key) and raw_key not in api_key.key_hash
    assert api_key.owner.username == "aris" and api_key.name == "production"
    assert not api_key.owner.has_usable_password()
    assert raw_key not in err.getvalue()

    call_command("create_api_key", "aris", stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.count() == 2
    assert django_user_model.objects.count() == 1


def test_create_api_key_can_refuse_unknown_users(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_key", "nobody", "--no-create-user", stdout=StringIO())


def test_make_tiny_model_is_offline_small_and_deterministic(tiny_model, tmp_path):
    call_command("make_tiny_model", "--path", str(tmp_path / "again"), stdout=StringIO())
    for name in ("model.safetensors", "tokenizer.json"):
        digest = [
            hashlib.sha256((p / name).read_bytes()).hexdigest()
            for p in (tiny_model, tmp_path / "again")
        ]
        assert digest[0] == digest[1]

    config = json.loads((tiny_model / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (256, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (4, 2)
    assert 4000 <= config["vocab_size"] <= 4200
    assert config["dtype"] == "bfloat16" or config.get("torch_dtype") == "bfloat16"
    generation = json.loads((tiny_model / "generation_config.json").read_text())
    assert not {"temperature", "top_p", "top_k"} & set(generation)
    tokenizer_config = json.loads((tiny_model / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert (tiny_model / "chat_template.jinja").read_text() == tokenizer_config["chat_template"]
    assert sum(p.stat().st_size for p in tiny_model.iterdir()) < 10 * 2**20


def answers(url, **kwargs) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, **kwargs)
    except httpx.TransportError:
        return None


def start_serve(env: dict, log_path, *only: str) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "serve",
            *(("--only", *only) if only else ()),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group, as under a terminal or systemd
    )


def stop_serve(serve: subprocess.Popen) -> None:
    """SIGTERM serve, and kill whatever of it is left: itself and each part,
    which runs in its own process group."""
    parts = []
    with contextlib.suppress(psutil.Error):
        parts = [child.pid for child in psutil.Process(serve.pid).children()]
    serve.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        serve.wait(timeout=300)
    for group in (serve.pid, *parts):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    serve.poll()


def serve_env(subprocess_env) -> tuple[dict, int, int]:
    api, viewer = free_port(), free_port()
    env = {**subprocess_env, "API_BIND": f"127.0.0.1:{api}", "VIEWER_BIND": f"127.0.0.1:{viewer}"}
    return env, api, viewer


def engine_pid(log: str) -> int | None:
    """The engine part's pid, as serve last logged it (its process title and
    environment are rewritten by setproctitle)."""
    started = re.findall(r"serve: started engine \(pid (\d+)\)", log)
    return int(started[-1]) if started else None


def ready(api: int) -> bool:
    response = answers(f"http://127.0.0.1:{api}/readyz")
    return response is not None and response.status_code == 200


@pytest.mark.subprocess
def test_serve_starts_every_part_and_stops_cleanly(subprocess_env, alice_key, tmp_path):
    env, api, viewer = serve_env(subprocess_env)
    serve = start_serve(env, tmp_path / "serve.log")
    log = lambda: (tmp_path / "serve.log").read_text()  # noqa: E731
    try:
        models = wait_for(
            lambda: answers(
                f"http://127.0.0.1:{api}/v1/models",
                headers={"Authorization": f"Bearer {alice_key}"},
            ),
            timeout=300,
            message=log,
        )
        assert models.status_code == 200
        assert models.json()["data"][0]["id"] == "tiny-chat"
        login = wait_for(lambda: answers(f"http://127.0.0.1:{viewer}/admin/login/"), timeout=300)
        assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
        assert answers(f"http://127.0.0.1:{api}/admin/login/").status_code == 404
        assert answers(f"http://127.0.0.1:{viewer}/v1/models").status_code == 404

        # /metrics sums the responses counted by every API worker process.
        for _ in range(10):
            assert answers(f"http://127.0.0.1:{api}/v1/files").status_code == 401
        metrics = answers(f"http://127.0.0.1:{api}/metrics").text
        assert (
            'batchserver_http_requests_total{method="GET",route="v1/files",status="401"} 10.0'
            in metrics
        ), metrics
        assert answers(f"http://127.0.0.1:{viewer}/healthz").status_code == 200
        # Ready once the workers run and the engine loaded its model at start.
        wait_for(lambda: ready(api), timeout=300, message=log)
        # Not ready yet is a state, logged as a warning, not an error.
        assert "ERROR django.request" not in log()
        children = psutil.Process(serve.pid).children(recursive=True)
        assert len(children) >= 4

        # Idle, a SIGTERM to serve's whole process group (as `kill -- -PGID`
        # or a service manager sends it) stops everything within seconds.
        started = time.monotonic()
        os.killpg(serve.pid, signal.SIGTERM)
        assert serve.wait(timeout=300) == 0
        # How fast is measured in bench/recovery.py; here, that it stops by
        # itself, without serve's SIGKILL fallback.
        print(f"idle serve stopped in {time.monotonic() - started:.1f} s")
        assert "did not stop" not in log()
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        stop_serve(serve)


@pytest.mark.subprocess
def test_serve_restarts_a_part_that_dies_while_the_others_keep_serving(
    subprocess_env, alice_key, tmp_path
):
    env, api, _ = serve_env(subprocess_env)
    serve = start_serve(env, tmp_path / "serve.log", "api", "control", "engine")
    log = lambda: (tmp_path / "serve.log").read_text()  # noqa: E731
    models = f"http://127.0.0.1:{api}/v1/models"
    key = {"Authorization": f"Bearer {alice_key}"}
    try:
        wait_for(lambda: ready(api), timeout=300, message=log)
        engine = engine_pid(log())
        assert engine is not None

        os.killpg(engine, signal.SIGKILL)  # the engine part and all it started
        # The API keeps answering while the engine is away and comes back.
        answered = []

        def engine_back():
            response = answers(models, headers=key)
            answered.append(response is not None and response.status_code == 200)
            return engine_pid(log()) not in (None, engine) and ready(api)

        wait_for(engine_back, timeout=300, interval=0.5, message=log)
        assert answered and all(answered), log()
        assert serve.poll() is None
        assert "serve: engine exited with code -9; restarting it in 1 s" in log()
        assert not psutil.pid_exists(engine)
    finally:
        stop_serve(serve)


def test_serve_waits_longer_before_each_restart_of_a_part_that_keeps_dying(monkeypatch):
    """1 s, doubling up to 60 s; back to 1 s once the part stayed up a minute."""
    from batches.management.commands import serve

    clock = [1000.0]
    monkeypatch.setattr(serve, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(serve.Part, "kill_group", lambda part: None)
    log = StringIO()
    command = serve.Command(stderr=log)

    def start(part):
        part.process = SimpleNamespace(pid=-1, poll=lambda: 1)  # dies at once
        part.started_at = clock[0]

    monkeypatch.setattr(command, "_start", start)
    part = serve.Part("engine", ["manage.py", "workers"])
    start(part)
    delays = []
    for _ in range(9):
        command._supervise(part)  # sees it exited
        delays.append(part.restart_at - clock[0])
        clock[0] = part.restart_at
        command._supervise(part)  # starts it again
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert "serve: engine exited with code 1; restarting it in 32 s" in log.getvalue()

    clock[0] += serve.STABLE_AFTER  # this time it stayed up a minute
    command._supervise(part)
    assert part.restart_at - clock[0] == 1
