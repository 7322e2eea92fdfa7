"""GET /v1/models latency while slow clients hold connections to the API.

    .venv/bin/python bench/slow_clients.py [--slow 20] [--duration 60] [--rate 1]
        [--kind headers|body|upload|mixed] [--threads N] [--nginx [CONF]]

Starts the quickstart's API (`manage.py serve --only api`, so gunicorn with
deploy/gunicorn/api.py) in a scratch DATA_DIR on SQLite, then opens `--slow`
connections that send at `--rate` bytes per second: `headers` trickle a
request's head (2 KiB of headers), `body` send a complete head for a 10 MB
upload and trickle its body, `mixed` half of each (all three without a key);
`upload` is `body` with a valid key, as from uploaders on slow links. A
connection the server answers or closes is opened again a byte's time later,
so the pressure stays for `--duration` seconds. Meanwhile one client polls
GET /v1/models with a valid key every 0.5 s, on a new connection each time
(timeout 30 s), and the script reports the polls' p50, p99 and max, and how
many took over 1 s and 10 s.

`--threads` sets API_THREADS (default: the config's). `--nginx` puts the
documented deployment's proxy in front: deploy/nginx/batchserver.conf (or
CONF) as it is, but for its listen ports, a self-signed certificate and the
API's port (needs `nginx`; every client then speaks TLS to nginx).
"""

import argparse
import asyncio
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx

POLL_INTERVAL = 0.5
POLL_TIMEOUT = 30.0
API_NAME = "api.example.com"  # the API's server_name in the nginx example


@dataclass
class Target:
    """Where the clients connect: gunicorn itself, or nginx in front of it."""

    port: int
    host_header: str
    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def slow_client(
    target: Target, key: str, kind: str, rate: float, stop: float, stats: dict
) -> None:
    """One connection at a time, trickling `kind`; reopened when closed."""
    host = target.host_header
    head = (
        f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slow\r\n"
        + "".join(f"X-Filler-{i}: {'x' * 40}\r\n" for i in range(40))
        + "\r\n"
    ).encode()
    if kind in ("body", "upload"):
        authorization = f"Authorization: Bearer {key}\r\n" if kind == "upload" else ""
        head = (
            f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\n{authorization}"
            "Content-Type: multipart/form-data; boundary=slowslowslow\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
        ).encode()
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                target.port,
                ssl=target.tls,
                server_hostname=host if target.tls else None,
            )
        except OSError:
            await asyncio.sleep(0.2)
            continue
        stats["connections"] += 1
        closed = asyncio.ensure_future(reader.read(65536))  # any answer or EOF: reconnect
        try:
            if kind != "headers":
                writer.write(head)  # the head at once, then the body byte by byte
                trickle = b"--slowslowslow\r\n" + b"x" * (10 * 1024 * 1024)
            else:
                trickle = head
            for i in range(len(trickle)):
                if time.monotonic() >= stop or closed.done():
                    break
                writer.write(trickle[i : i + 1])
                await writer.drain()
                await asyncio.wait({closed}, timeout=1 / rate)
        except OSError:
            pass
        finally:
            if closed.done():
                stats["closed_by_server"] += 1
            closed.cancel()
            writer.close()
        await asyncio.sleep(1 / rate)  # slow to come back, too: never a flood


async def poll(target: Target, key: str, stop: float) -> tuple[list[float], list[str]]:
    latencies, errors = [], []
    # A new connection per poll, as from many clients: a kept-alive one would
    # stay with whichever worker first answered it.
    headers = {"Authorization": f"Bearer {key}", "Host": target.host_header, "Connection": "close"}
    async with httpx.AsyncClient(headers=headers, timeout=POLL_TIMEOUT, verify=False) as client:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                (await client.get(f"{target.url}/models")).raise_for_status()
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(max(0.0, POLL_INTERVAL - (time.perf_counter() - started)))
    return latencies, errors


async def attack(target: Target, key: str, slow: int, kind: str, rate: float, duration: float):
    stop = time.monotonic() + duration
    stats = {"connections": 0, "closed_by_server": 0}
    kinds = ["headers", "body"] if kind == "mixed" else [kind]
    slow_tasks = [
        asyncio.ensure_future(slow_client(target, key, kinds[i % len(kinds)], rate, stop, stats))
        for i in range(slow)
    ]
    await asyncio.sleep(2)  # let them take their threads first
    latencies, errors = await poll(target, key, stop)
    await asyncio.gather(*slow_tasks)
    return {"latencies": latencies, "errors": errors, **stats}


@contextmanager
def nginx_in_front(api_port: int, conf_path: Path):
    """The nginx example on a free local port, proxying to `api_port`."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="batchserver-bench-nginx-"))
    certificate = ["-keyout", f"{work}/key.pem", "-out", f"{work}/cert.pem", "-subj", "/CN=x"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *certificate],
        check=True,
        capture_output=True,
    )
    port = harness.free_port()
    conf = conf_path.read_text()
    conf = re.sub(r"ssl_certificate (\S+);", f"ssl_certificate {work}/cert.pem;", conf)
    conf = re.sub(r"ssl_certificate_key (\S+);", f"ssl_certificate_key {work}/key.pem;", conf)
    conf = re.sub(r"listen \[::\]:\d+( ssl)?;", "", conf)
    conf = conf.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{harness.free_port()};")
    conf = conf.replace("server 127.0.0.1:4080;", f"server 127.0.0.1:{api_port};")
    (work / "nginx.conf").write_text(
        f"pid {work}/nginx.pid;\nerror_log {work}/error.log;\ndaemon off;\nworker_processes 1;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {work}/body;\n"
        f"proxy_temp_path {work}/proxy;\n{conf}\n}}\n"
    )
    process = subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf")])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        yield Target(port=port, host_header=API_NAME, tls=context)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=20, help="slow connections held")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of attack")
    parser.add_argument("--rate", type=float, default=1.0, help="bytes per second each")
    parser.add_argument("--kind", choices=["headers", "body", "upload", "mixed"], default="headers")
    parser.add_argument("--threads", type=int, help="API_THREADS for the server")
    parser.add_argument(
        "--nginx",
        nargs="?",
        type=Path,
        const=harness.ROOT / "deploy" / "nginx" / "batchserver.conf",
        help="through this nginx config (default: deploy/nginx/batchserver.conf)",
    )
    args = parser.parse_args()

    env = {"ALLOWED_HOSTS": f"127.0.0.1,localhost,{API_NAME}"}
    if args.threads:
        env["API_THREADS"] = str(args.threads)
    server = harness.Stack(database_url=None, only=["api"], env=env).start()
    try:
        baseline = [
            httpx.get(f"{server.url}/models", headers=server.headers).elapsed.total_seconds()
            for _ in range(20)
        ]
        if args.nginx:
            with nginx_in_front(server.api_port, args.nginx) as target:
                result = asyncio.run(
                    attack(target, server.key, args.slow, args.kind, args.rate, args.duration)
                )
        else:
            target = Target(port=server.api_port, host_header="127.0.0.1")
            result = asyncio.run(
                attack(target, server.key, args.slow, args.kind, args.rate, args.duration)
            )
    finally:
        server.stop()

    latencies = result["latencies"]
    print(f"machine: {harness.machine()}")
    print(
        f"{args.slow} slow connections ({args.kind}) at {args.rate:g} B/s for "
        f"{args.duration:g} s{' through nginx' if args.nginx else ''}; "
        f"{result['connections']} opened, {result['closed_by_server']} closed by the server"
    )
    print(f"idle poll (direct): median {statistics.median(baseline) * 1000:.1f} ms")
    print(
        f"polls: {len(latencies)}, p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms, "
        f"> 1 s: {sum(v > 1000 for v in latencies)}, > 10 s: {sum(v > 10000 for v in latencies)}, "
        f"failed: {len(result['errors'])}"
    )
    for error in sorted(set(result["errors"]))[:5]:
        print(f"  {error}")


if __name__ == "__main__":
    main()
