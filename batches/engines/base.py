"""The small interface every engine implements, and the OpenAI bodies they return."""

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from batches.engines.params import CHAT, InvalidRequest
from core.exceptions import error_body, error_type


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

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    @property
    def transient(self) -> bool:
        """A failure worth another try: the engine or its server, not the request."""
        return self.status_code >= 500 or self.status_code == 429


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    logprobs: dict | None = None


class Engine(Protocol):
    model: str

    def run(
        self, requests: Iterable[EngineRequest], should_stop: Callable[[], bool]
    ) -> Iterator[EngineResult]:
        """Run the requests, yielding each result as soon as it is known.

        Results come in completion order, not input order. When `should_stop()`
        turns true the engine abandons what is still running and returns; the
        requests it did not yield stay pending.
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
