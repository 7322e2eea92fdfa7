import hashlib
import json
import signal
import subprocess
import sys
import time
from io import StringIO

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


@pytest.mark.subprocess
def test_serve_starts_every_part_and_stops_cleanly(subprocess_env, alice_key, tmp_path):
    api, viewer = free_port(), free_port()
    env = {
        **subprocess_env,
        "API_BIND": f"127.0.0.1:{api}",
        "VIEWER_BIND": f"127.0.0.1:{viewer}",
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def answers(url, **kwargs):
            try:
                return httpx.get(url, timeout=2, **kwargs)
            except httpx.TransportError:
                return None

        models = wait_for(
            lambda: answers(
                f"http://127.0.0.1:{api}/v1/models",
                headers={"Authorization": f"Bearer {alice_key}"},
            ),
            timeout=60,
            message=(tmp_path / "serve.log").read_text(),
        )
        assert models.status_code == 200
        assert models.json()["data"][0]["id"] == "tiny-chat"
        login = wait_for(lambda: answers(f"http://127.0.0.1:{viewer}/admin/login/"), timeout=30)
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
        children = psutil.Process(serve.pid).children(recursive=True)
        assert len(children) >= 4

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=40) == 0
        time.sleep(0.5)
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        if serve.poll() is None:
            serve.kill()
