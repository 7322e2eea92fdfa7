"""The deploy files (systemd units, nginx, deploy/OPERATIONS.md) agree with the code:
the files they start exist, the commands they run exist, and the variables they name
are the ones deploy/.env.example documents."""

import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands

from batches.uploads import UPLOAD_ENVELOPE_BYTES

BASE = settings.BASE_DIR
DEPLOY = BASE / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("batchserver*"))
SERVICES = [unit for unit in UNITS if unit.suffix == ".service"]
OPERATIONS = DEPLOY / "OPERATIONS.md"
NGINX = DEPLOY / "nginx" / "batchserver.conf"
ENV_EXAMPLE = DEPLOY / ".env.example"
# Where the units expect the checkout (and its .venv) on a server.
INSTALL_DIR = "/opt/batchserver"

# Every management command the deploy files tell an operator (or systemd) to run.
REFERENCED_COMMANDS = {
    "axes_list_attempts",
    "axes_reset",
    "axes_reset_username",
    "collectstatic",
    "create_api_key",
    "createsuperuser",
    "import_results",
    "make_instruct_model",
    "migrate",
    "purge_expired",
    "revoke_api_key",
    "workers",
}

# Variables the deploy files set that are not settings, so .env.example does not
# list them: django-q2 picks a cluster by Q_CLUSTER_NAME, per process (the units
# set it), and CUDA_VISIBLE_DEVICES pins a per-GPU engine unit to its GPU.
NOT_SETTINGS = {"Q_CLUSTER_NAME", "CUDA_VISIBLE_DEVICES"}

# An upper-case name with an underscore (DATA_DIR), or any upper-case name
# assigned a value (DEBUG=false, Environment=ENV_FILE=...).
VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|(?<![\w-])[A-Z][A-Z0-9_]*(?==)")


def unit_directives(path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of a unit file, continuation lines joined, comments dropped."""
    directives, pending = [], ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.append((key.strip(), value.strip()))
    return directives


def directive(path: Path, key: str) -> list[str]:
    return [value for name, value in unit_directives(path) if name == key]


def local_path(installed: str) -> Path:
    """The file a server path under INSTALL_DIR names, in this checkout: its
    virtualenv's executables in the running one, everything else in BASE_DIR."""
    relative = Path(installed).relative_to(INSTALL_DIR)
    if relative.parts[:2] == (".venv", "bin"):
        return Path(sys.prefix) / "bin" / relative.name
    return BASE / relative


def command_lines(unit: Path) -> list[list[str]]:
    lines = []
    for key in ("ExecStart", "ExecReload"):
        for value in directive(unit, key):
            lines.append(shlex.split(value.lstrip("-@:+!")))
    return lines


def code_in_markdown(text: str) -> str:
    """Fenced blocks and inline code spans: the parts an operator types."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return "\n".join(fenced + inline)


def commands_named_in(text: str) -> set[str]:
    # `manage.py migrate` in units, `manage migrate` (the guide's helper) in the guide.
    return set(re.findall(r"\bmanage(?:\.py)?\s+([a-z][a-z0-9_]*)", text))


def listed_in_env_example() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def env_example_value(name: str) -> str:
    return re.search(rf"^{name}=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE).group(1)


def test_the_deploy_files_are_there():
    names = {unit.name for unit in UNITS}
    assert {
        "batchserver-api.service",
        "batchserver-viewer.service",
        "batchserver-control.service",
        "batchserver-engine.service",
        "batchserver-engine@.service",
        "batchserver.target",
    } <= names
    assert OPERATIONS.is_file() and NGINX.is_file()


@pytest.mark.parametrize("unit", SERVICES, ids=lambda unit: unit.name)
def test_every_exec_line_names_files_in_the_checkout(unit):
    lines = command_lines(unit)
    assert directive(unit, "ExecStart"), f"{unit.name} has no ExecStart"
    for line in lines:
        for word in line:
            # CUDA_VISIBLE_DEVICES=%I and the like, before the program (env(1)).
            value = word.partition("=")[2] if re.match(r"[A-Z_]+=", word) else word
            if value.startswith(INSTALL_DIR + "/"):
                assert local_path(value).is_file(), f"{unit.name}: {value} is not in the checkout"
    programs = [word for line in lines for word in line if word.startswith(INSTALL_DIR)]
    assert programs, f"{unit.name} starts nothing from {INSTALL_DIR}"


@pytest.mark.parametrize("unit", SERVICES, ids=lambda unit: unit.name)
def test_every_service_runs_as_the_service_user_with_the_env_file(unit):
    assert directive(unit, "User") == ["batchserver"]
    assert directive(unit, "WorkingDirectory") == [INSTALL_DIR]
    assert directive(unit, "EnvironmentFile") == ["/etc/batchserver/env"]
    assert "ENV_FILE=/etc/batchserver/env" in directive(unit, "Environment")
    assert directive(unit, "ReadWritePaths") == ["/var/lib/batchserver"]
    assert directive(unit, "PartOf") == ["batchserver.target"]
    assert directive(unit, "Restart") == ["on-failure"]


def test_the_web_units_run_the_gunicorn_configs_and_reload_on_hup():
    for name, config in (("api", "api.py"), ("viewer", "viewer.py")):
        unit = DEPLOY / "systemd" / f"batchserver-{name}.service"
        (start,) = command_lines(unit)[:1]
        assert start[1:] == ["-c", f"{INSTALL_DIR}/deploy/gunicorn/{config}"]
        assert Path(start[0]).name == "gunicorn"
        assert directive(unit, "ExecReload") == ["/bin/kill -s HUP $MAINPID"]


def test_the_engine_units_run_the_engine_cluster_below_the_api():
    plain = DEPLOY / "systemd" / "batchserver-engine.service"
    template = DEPLOY / "systemd" / "batchserver-engine@.service"
    assert "Q_CLUSTER_NAME=engine" in directive(plain, "Environment")
    (start,) = directive(template, "ExecStart")
    assert "Q_CLUSTER_NAME=engine" in start.split() and "CUDA_VISIBLE_DEVICES=%I" in start
    # The control cluster must never pick up the engine's name from the env file.
    control = DEPLOY / "systemd" / "batchserver-control.service"
    assert directive(control, "UnsetEnvironment") == ["Q_CLUSTER_NAME"]
    for unit in (plain, template):
        # systemd cannot read ENGINE_NICE, so the units repeat its default.
        assert directive(unit, "Nice") == [env_example_value("ENGINE_NICE")]
        assert directive(unit, "KillMode") == ["mixed"]


def test_the_target_wants_units_that_exist():
    target = DEPLOY / "systemd" / "batchserver.target"
    wanted = " ".join(directive(target, "Wants")).split()
    assert len(wanted) == 4
    for name in wanted:
        assert (DEPLOY / "systemd" / name).is_file(), name


def test_every_unit_the_guide_names_exists():
    named = re.findall(r"\bbatchserver-([a-z]+)(?:(@)|(?![\w/-]))", OPERATIONS.read_text())
    assert named
    for name, template in named:
        unit = f"batchserver-{name}{template}.service"
        assert (DEPLOY / "systemd" / unit).is_file(), unit


def test_every_management_command_referenced_exists():
    in_units = commands_named_in(
        " ".join(" ".join(line) for u in UNITS for line in command_lines(u))
    )
    in_guide = commands_named_in(code_in_markdown(OPERATIONS.read_text()))
    referenced = in_units | in_guide
    # The list above is what the files reference: a new command there is added here too.
    assert referenced == REFERENCED_COMMANDS
    assert referenced <= set(get_commands())


def test_every_variable_named_is_in_the_env_example():
    named = set()
    for path in [*UNITS, OPERATIONS]:
        named |= set(VARIABLE.findall(path.read_text()))
    # The extraction finds what it should.
    assert {"SECRET_KEY", "DATABASE_URL", "ENV_FILE", "DEBUG", "MODELS"} <= named
    assert named - NOT_SETTINGS - listed_in_env_example() == set()


def test_nginx_proxies_to_the_default_binds_and_allows_a_full_upload():
    conf = NGINX.read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{\s*server ([\d.:]+);", conf))
    assert upstreams == {
        "batchserver_api": env_example_value("API_BIND"),
        "batchserver_viewer": env_example_value("VIEWER_BIND"),
    }
    # Bigger than the app's limit on a whole upload request, so the app (not nginx)
    # refuses an oversized file.
    sizes = re.findall(r"client_max_body_size (\d+)m;", conf)
    upload_request = int(env_example_value("MAX_UPLOAD_BYTES")) + UPLOAD_ENVELOPE_BYTES
    assert int(sizes[0]) * 1024 * 1024 > upload_request
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    # Static files come from collectstatic's target, DATA_DIR/static.
    (alias,) = re.findall(r"alias (\S+);", conf)
    static = settings.STATIC_ROOT.relative_to(settings.DATA_DIR)
    assert Path(alias) == Path("/var/lib/batchserver") / static


def server_block(conf: str, name: str) -> str:
    """The text of the `server { … }` block with `server_name name;`."""
    for block in re.split(r"\n(?=server \{)", conf):
        if re.search(rf"server_name {re.escape(name)};", block):
            return block
    raise AssertionError(f"no server block for {name}")


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|m)?", value).groups()
    return int(number) * (60 if unit == "m" else 1)


def test_nginx_shields_the_api_from_slow_clients():
    """gunicorn's threads block while a request arrives; nginx reads each request
    whole, under deadlines, and passes on only complete ones."""
    api = server_block(NGINX.read_text(), "api.example.com")
    assert "proxy_request_buffering on;" in api
    assert "proxy_request_buffering off;" not in NGINX.read_text()
    header = re.search(r"client_header_timeout (\w+);", api).group(1)
    body = re.search(r"client_body_timeout (\w+);", api).group(1)
    assert seconds(header) <= 15 and seconds(body) <= 60


def test_what_nginx_answers_itself_on_the_api_is_json():
    api = server_block(NGINX.read_text(), "api.example.com")
    for status, location in (("413", "@too_large"), ("502 503 504", "@unavailable")):
        assert f"error_page {status} {location};" in api
        body = re.search(rf"location {location} \{{(.*?)\}}\n", api, re.DOTALL).group(1)
        assert "default_type application/json;" in body
        payload = re.search(r"return \d+ '(.*)';", body).group(1)
        assert set(json.loads(payload)["error"]) == {"message", "type", "param", "code"}


def test_the_api_gunicorn_config_bounds_requests_and_keeps_threads_for_others():
    config = runpy.run_path(str(DEPLOY / "gunicorn" / "api.py"))
    assert config["worker_class"] == "gthread"
    # 20 connections trickling bytes took every one of 2 x 8 threads (bench/RESULTS.md).
    assert config["workers"] * config["threads"] >= 64
    assert str(config["threads"]) == env_example_value("API_THREADS")
    assert config["limit_request_line"] <= 8190
    assert config["limit_request_fields"] <= 100
    assert config["limit_request_field_size"] <= 8190
    # No query string, referrer or basic-auth user in the access log: keys stay out of it.
    log_format = config["access_log_format"]
    for atom in ("%(r)s", "%(q)s", "%(f)s", "%(u)s", "{authorization}i"):
        assert atom not in log_format
    assert "%(U)s" in log_format


NGINX_BINARY = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
)


@pytest.mark.skipif(not (NGINX_BINARY and shutil.which("openssl")), reason="nginx is not here")
def test_nginx_accepts_the_config(tmp_path):
    """`nginx -t` on the example, with a throw-away certificate and its own paths."""
    files = ["-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x", *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    conf = NGINX.read_text()
    conf = re.sub(r"ssl_certificate (\S+);", f"ssl_certificate {tmp_path}/cert.pem;", conf)
    conf = re.sub(r"ssl_certificate_key (\S+);", f"ssl_certificate_key {tmp_path}/key.pem;", conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path}/body;\n"
        f"proxy_temp_path {tmp_path}/proxy;\n{conf}\n}}\n"
    )
    result = subprocess.run(
        [NGINX_BINARY, "-t", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not here")
def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify` on the units, pointed at this checkout."""
    for unit in UNITS:
        text = unit.read_text().replace(f"{INSTALL_DIR}/.venv/bin", f"{sys.prefix}/bin")
        (tmp_path / unit.name).write_text(text.replace(INSTALL_DIR, str(BASE)))
    # A template is checked through an instance (loaded from the same folder).
    names = [unit.name for unit in UNITS if "@." not in unit.name] + [
        "batchserver-engine@0.service"
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[str(tmp_path / name) for name in names]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # It exits 0 on unknown keys and bad values, but complains on stderr.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
