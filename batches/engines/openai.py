"""The `openai` engine: run requests on OpenAI-compatible servers (scale-out).

Each request body goes as it is to `<url>/chat/completions` or `<url>/completions`
of one of the configured servers (round-robin): several `vllm serve` replicas,
or a router in front of a fleet. Concurrency is bounded; answers and errors map
to the same results as the in-process engine: 2xx is the completion, 4xx fails
the request at once, 5xx, timeouts and connection errors are transient (retried).
"""

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import httpx

from batches.engines.base import (
    Admit,
    EngineRequest,
    EngineResult,
    admit_window,
    error_result,
    invalid_request_result,
)
from batches.engines.params import CHAT, InvalidRequest, parse_request

PATHS = {CHAT: "/chat/completions", "/v1/completions": "/completions"}


class OpenAIEngine:
    def __init__(
        self, model: str, *, urls: list[str], api_key: str, concurrency: int, timeout: float
    ):
        if not urls:
            raise ValueError("ENGINE=openai needs OPENAI_ENGINE_URLS (…/v1 of each server).")
        self.model = model
        self.concurrency = concurrency
        self.window = concurrency + max(1, concurrency // 4)
        self._urls = itertools.cycle([url.rstrip("/") for url in urls])
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def run(
        self,
        requests: Iterable[EngineRequest],
        should_stop: Callable[[], bool],
        admit: Admit | None = None,
    ) -> Iterator[EngineResult]:
        source = iter(requests)
        inflight: set[Future] = set()
        exhausted = False
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai") as pool:
            try:
                while True:
                    if should_stop():
                        return
                    if not exhausted and len(inflight) <= self.concurrency:
                        # The admission window (see Engine.run): `concurrency`
                        # requests on the wire, a quarter more queued, taken in
                        # whenever no more than `concurrency` are held.
                        wanted = self.window - len(inflight)
                        window = admit_window(source, wanted, admit)
                        exhausted = len(window) < wanted
                        inflight.update(pool.submit(self._send, request) for request in window)
                    if not inflight:
                        return
                    done, inflight = wait(inflight, timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                for future in inflight:
                    future.cancel()

    def close(self) -> None:
        self._client.close()

    def _next_url(self) -> str:
        with self._lock:
            return next(self._urls)

    def _send(self, request: EngineRequest) -> EngineResult:
        try:
            parse_request(request.endpoint, request.body)  # same 400s as the vLLM engine
        except InvalidRequest as error:
            return invalid_request_result(request.key, error)
        started = time.monotonic()
        url = self._next_url() + PATHS[request.endpoint]
        try:
            response = self._client.post(url, json=request.body)
        except httpx.HTTPError as error:
            return error_result(request.key, 503, f"Engine server unreachable: {error}")
        latency = int((time.monotonic() - started) * 1000)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return error_result(
                request.key, 502, f"Engine server answered {response.status_code} without JSON."
            )
        if response.status_code != 200:
            error_info = body.get("error")
            if not isinstance(error_info, dict):
                error_info = {}
            message = error_info.get("message") or body.get("message") or response.reason_phrase
            code = error_info.get("code")
            return error_result(
                request.key,
                response.status_code,
                str(message),
                param=error_info.get("param"),
                code=None if code is None else str(code),
            )
        usage = body.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return EngineResult(
            key=request.key,
            status_code=200,
            body=body,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            cached_tokens=details.get("cached_tokens") or 0,
            latency_ms=latency,
        )
