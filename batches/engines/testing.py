"""A deterministic engine double, for unit tests and overhead benchmarks only.

It answers instantly with an echo of the last message, counts words as tokens,
and understands markers that tests use to provoke behaviour:
`[[fail:400]]` / `[[fail:500]]` fail the request, `[[flaky:2]]` fails its first
two runs in this process with a 500, `[[sleep:0.05]]` slows it, and
`[[raise]]` makes the engine raise while it holds the request, as a vLLM step
fails for every sequence in it.

Like vLLM it admits requests in windows (`window` at a time, see Engine.run)
and then answers them one by one.
"""

import re
import time
from collections.abc import Callable, Iterable, Iterator

from batches.engines.base import (
    Admit,
    Choice,
    EngineError,
    EngineRequest,
    EngineResult,
    admit_window,
    completion_body,
    error_result,
    invalid_request_result,
)
from batches.engines.params import CHAT, InvalidRequest, parse_request

_FAIL = re.compile(r"\[\[fail:(\d{3})\]\]")
_SLEEP = re.compile(r"\[\[sleep:([0-9.]+)\]\]")
_FLAKY = re.compile(r"\[\[flaky:(\d+)\]\]")
_RAISE = "[[raise]]"
DEFAULT_MAX_TOKENS = 16


class DeterministicTestEngine:
    # Requests admitted at a time, as vLLM admits a window over what it runs;
    # each window costs one write, which overhead benchmarks on this engine see.
    window = 32

    def __init__(self, model: str):
        self.model = model
        self.runs: dict[int, int] = {}  # request key -> runs so far, for [[flaky:n]]

    def run(
        self,
        requests: Iterable[EngineRequest],
        should_stop: Callable[[], bool],
        admit: Admit | None = None,
    ) -> Iterator[EngineResult]:
        source = iter(requests)
        while not should_stop():
            window = admit_window(source, self.window, admit)
            if not window:
                return
            if any(_RAISE in repr(request.body) for request in window):
                raise EngineError("RuntimeError: Provoked engine failure.")
            for request in window:
                if should_stop():
                    return
                yield self._answer(request)

    def close(self) -> None:
        pass

    def _answer(self, request: EngineRequest) -> EngineResult:
        started = time.monotonic()
        try:
            parsed = parse_request(request.endpoint, request.body)
        except InvalidRequest as error:
            return invalid_request_result(request.key, error)

        if parsed.endpoint == CHAT:
            assert parsed.messages is not None  # parse_request sets them for chat
            prompt_text = " ".join(m["content"] for m in parsed.messages)
            last = parsed.messages[-1]["content"]
        else:
            assert parsed.prompt is not None  # parse_request sets it for completions
            prompt_text = last = (
                parsed.prompt
                if isinstance(parsed.prompt, str)
                else " ".join(map(str, parsed.prompt))
            )
        if sleep := _SLEEP.search(prompt_text):
            time.sleep(float(sleep.group(1)))
        if fail := _FAIL.search(prompt_text):
            status = int(fail.group(1))
            return error_result(
                request.key, status, f"Provoked failure {status}.", code="test_failure"
            )
        self.runs[request.key] = self.runs.get(request.key, 0) + 1
        if (flaky := _FLAKY.search(prompt_text)) and self.runs[request.key] <= int(flaky.group(1)):
            return error_result(
                request.key, 500, "Provoked transient failure.", code="test_failure"
            )

        limit = parsed.options.max_tokens or DEFAULT_MAX_TOKENS
        words = f"echo: {last}".split()
        finish_reason = "length" if len(words) > limit else "stop"
        text = " ".join(words[:limit])
        prompt_tokens = len(prompt_text.split())
        completion_tokens = min(len(words), limit) * parsed.options.n
        body = completion_body(
            endpoint=parsed.endpoint,
            model=self.model,
            choices=[Choice(text=text, finish_reason=finish_reason)] * parsed.options.n,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        return EngineResult(
            key=request.key,
            status_code=200,
            body=body,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=int((time.monotonic() - started) * 1000),
        )
