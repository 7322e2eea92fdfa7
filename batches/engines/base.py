"""The small interface every engine implements, and the OpenAI bodies they return."""

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from batches.engines.params import CHAT, InvalidRequest
from core.exceptions import error_body, error_type
from core.text import clipped


@dataclass(frozen=True)
class EngineRequest:
    key: int  # the Request row's primary key
    endpoint: str
    body: dict


@dataclass(frozen=True)
class EngineResult:
    key: int
    status_code: int
    body: dict  # a chat.completion / text_completion, or {"error": {...}}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: int = 0
    # The engine failed on this request run alone: another try fails the same way.
    deterministic: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    @property
    def transient(self) -> bool:
        """A failure worth another try: the engine or its server, not the request."""
        if self.deterministic:
            return False
        return self.status_code >= 500 or self.status_code == 429


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    logprobs: dict | None = None


# Called with request keys before the engine takes them in; see Engine.run.
Admit = Callable[[list[int]], None]


def admit_window(
    source: Iterator[EngineRequest], size: int, admit: Admit | None
) -> list[EngineRequest]:
    """The next `size` requests (fewer at the end), reported to `admit` before
    the engine receives them: only admitted requests are charged an attempt."""
    window = list(itertools.islice(source, size))
    if window and admit is not None:
        admit([request.key for request in window])
    return window


class EngineError(Exception):
    """The engine failed while it held requests (a step raised), and still works.

    Which of the requests it held caused it is unknown: the caller runs each of
    them alone to find out (batches/pipeline/execution.py). The message is the
    original exception's type and message, as a result may show it.
    """

    @classmethod
    def wrapping(cls, error: BaseException) -> "EngineError":
        # Cut: an engine's message may quote a whole prompt or tensor.
        return cls(clipped(f"{type(error).__name__}: {error}"))


class EngineDead(Exception):
    """The engine can run nothing more (its core process died): it must be reloaded."""


class Engine(Protocol):
    model: str

    def run(
        self,
        requests: Iterable[EngineRequest],
        should_stop: Callable[[], bool],
        admit: Admit | None = None,
    ) -> Iterator[EngineResult]:
        """Run the requests, yielding each result as soon as it is known.

        Results come in completion order, not input order. When `should_stop()`
        turns true the engine abandons what is still running and returns; the
        requests it did not yield stay pending.

        A request is *sent* when the engine admits it: before it takes requests
        into its bounded in-flight window, the engine calls `admit(keys)`, which
        returns once an attempt is recorded for each of them. Only admitted
        requests are charged an attempt, so a worker that dies charges what it
        held and nothing else. An engine admits in windows (not one by one) to
        keep that bookkeeping off the hot path, and never holds more than its
        window: a few more than it runs at once.

        When a step fails, the engine drops everything it held and raises
        EngineError; admitted requests without a result are the ones affected.
        It raises EngineDead when it cannot go on at all.
        """
        ...

    def close(self) -> None:
        """Release the model (memory, accelerator, child processes)."""
        ...


def completion_body(
    *,
    endpoint: str,
    model: str,
    choices: list[Choice],
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> dict:
    """A `chat.completion` or `text_completion` object, usage included."""
    if endpoint == CHAT:
        rendered = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "logprobs": c.logprobs,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(choices)
        ]
        object_name, id_prefix = "chat.completion", "chatcmpl-"
    else:
        rendered = [
            {"index": i, "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason}
            for i, c in enumerate(choices)
        ]
        object_name, id_prefix = "text_completion", "cmpl-"
    return {
        "id": f"{id_prefix}{uuid.uuid4().hex}",
        "object": object_name,
        "created": int(time.time()),
        "model": model,
        "choices": rendered,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
        "system_fingerprint": None,
    }


def invalid_request_result(key: int, error: InvalidRequest) -> EngineResult:
    return error_result(key, 400, error.message, param=error.param, code=error.code)


def engine_error_result(key: int, error: EngineError) -> EngineResult:
    """The result of a request the engine failed on when it ran alone: final, not retried."""
    result = error_result(key, 500, str(error), code="engine_error")
    return EngineResult(key=key, status_code=500, body=result.body, deterministic=True)


def error_result(
    key: int,
    status_code: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
) -> EngineResult:
    body = error_body(message, type=error_type(status_code), param=param, code=code)
    return EngineResult(key=key, status_code=status_code, body=body)
