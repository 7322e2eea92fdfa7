"""Read an OpenAI request body into engine-neutral generation options.

Type and shape checks live here, so a malformed field fails that one request
with a 400 in OpenAI's error shape, whichever engine runs it. Range checks that
depend on the engine (a temperature vLLM refuses, say) are the engine's.
"""

from dataclasses import dataclass, field
from typing import Any

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"

MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Generation features a batch request may not use here: streaming makes no sense
# in a batch, and tools, audio and images are not served by this engine.
UNSUPPORTED_FIELDS = ("tools", "functions", "tool_choice", "function_call", "audio", "prediction")


class InvalidRequest(Exception):
    """The request body cannot be run; becomes that request's 400 response."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class GenerationOptions:
    n: int = 1
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # number of top alternatives; 0 = the sampled token only
    ignore_eos: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict)
    json_schema: dict | None = None
    json_object: bool = False


@dataclass(frozen=True)
class ParsedRequest:
    """What an engine needs: the prompt (messages or text) and the options."""

    endpoint: str
    messages: list[dict] | None
    prompt: str | list[int] | None
    options: GenerationOptions


def parse_request(endpoint: str, body: dict) -> ParsedRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", param="body")
    for name in UNSUPPORTED_FIELDS:
        if body.get(name):
            raise InvalidRequest(
                f"'{name}' is not supported by this server.",
                param=name,
                code="unsupported_parameter",
            )
    if body.get("stream"):
        raise InvalidRequest(
            "Streaming is not available in a batch.", param="stream", code="unsupported_parameter"
        )

    if endpoint == CHAT:
        messages = _messages(body.get("messages"))
        prompt = None
        logprobs = None
        if _bool(body, "logprobs"):
            logprobs = _int(body, "top_logprobs", minimum=0, maximum=20) or 0
        elif body.get("top_logprobs") is not None:
            raise InvalidRequest(
                "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs"
            )
        max_tokens = _int(body, "max_completion_tokens", minimum=1)
        if max_tokens is None:
            max_tokens = _int(body, "max_tokens", minimum=1)
        json_schema, json_object = _response_format(body.get("response_format"))
    elif endpoint == COMPLETIONS:
        messages = None
        prompt = _prompt(body.get("prompt"))
        logprobs = _int(body, "logprobs", minimum=0, maximum=20)
        max_tokens = _int(body, "max_tokens", minimum=1)
        json_schema, json_object = _response_format(body.get("response_format"))
    else:
        raise InvalidRequest(f"Unsupported endpoint {endpoint}.", param="url")

    options = GenerationOptions(
        n=_int(body, "n", minimum=1, maximum=128) or 1,
        max_tokens=max_tokens,
        temperature=_float(body, "temperature"),
        top_p=_float(body, "top_p"),
        top_k=_int(body, "top_k", minimum=-1),
        min_p=_float(body, "min_p"),
        presence_penalty=_float(body, "presence_penalty"),
        frequency_penalty=_float(body, "frequency_penalty"),
        repetition_penalty=_float(body, "repetition_penalty"),
        seed=_int(body, "seed"),
        stop=_stop(body.get("stop")),
        logprobs=logprobs,
        ignore_eos=_bool(body, "ignore_eos"),
        logit_bias=_logit_bias(body.get("logit_bias")),
        json_schema=json_schema,
        json_object=json_object,
    )
    return ParsedRequest(endpoint=endpoint, messages=messages, prompt=prompt, options=options)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise InvalidRequest(f"'{name}' must be a number.", param=name)
    return float(value)


def _int(
    body: dict, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be an integer.", param=name)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"'{name}' must be at least {minimum}.", param=name)
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"'{name}' must be at most {maximum}.", param=name)
    return value


def _bool(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean.", param=name)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 4:
        return tuple(value)
    raise InvalidRequest("'stop' must be a string or a list of at most 4 strings.", param="stop")


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'logit_bias' must be an object.", param="logit_bias")
    try:
        bias = {int(token): float(b) for token, b in value.items()}
    except (TypeError, ValueError):
        raise InvalidRequest(
            "'logit_bias' maps token ids to numbers.", param="logit_bias"
        ) from None
    if any(not -100 <= b <= 100 for b in bias.values()):
        raise InvalidRequest(
            "'logit_bias' values must be between -100 and 100.", param="logit_bias"
        )
    return bias


def _messages(value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    messages = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{param}' must be an object.", param=param)
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise InvalidRequest(
                f"'{param}.role' must be one of {', '.join(sorted(MESSAGE_ROLES))}.",
                param=f"{param}.role",
            )
        messages.append({"role": role, "content": _content(message.get("content"), param)})
    return messages


def _content(value: Any, param: str) -> str:
    """Message content as text: a string, or a list of text parts joined."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    f"'{param}.content' may only hold text parts here.",
                    param=f"{param}.content",
                    code="unsupported_parameter",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"'{param}.content' text parts need a 'text' string.", param=f"{param}.content"
                )
            texts.append(text)
        return "\n".join(texts)
    raise InvalidRequest(
        f"'{param}.content' must be a string or a list of text parts.", param=f"{param}.content"
    )


def _prompt(value: Any) -> str | list[int]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    ):
        return value
    raise InvalidRequest(
        "'prompt' must be a string, a list holding one string, or a list of token ids.",
        param="prompt",
    )


def _response_format(value: Any) -> tuple[dict | None, bool]:
    """(json_schema, json_object) from `response_format`."""
    if value is None:
        return None, False
    if not isinstance(value, dict):
        raise InvalidRequest("'response_format' must be an object.", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        return None, True
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "'response_format.json_schema.schema' must be a JSON Schema object.",
                param="response_format.json_schema.schema",
            )
        return schema, False
    raise InvalidRequest(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.",
        param="response_format.type",
    )
