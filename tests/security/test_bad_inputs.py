"""Hostile and malformed batch input files, through the official SDK.

Each case is an input file and what must become of it: refused at upload, a
batch that ends `failed` with the README's error code and line, or a batch
that runs to `completed` with every request stored exactly as sent. Whatever
the input, no response is a 5xx, the server keeps answering, and a batch that
finished before (the witness) is untouched: its retrieved JSON, its output
file and its request rows.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import openai
import pytest

from batches.models import Batch, Chunk, File, Request
from tests.factories import CHAT, COMPLETIONS, MODEL, chat_requests, jsonl, request_line

BOM = b"\xef\xbb\xbf"
SMALL_LINE_LIMIT = 1024  # MAX_LINE_BYTES for the line-length cases, to keep them fast
ErrorList = list[tuple[str, int | None]]

# A hundred cases through the live API take about a minute on two busy cores,
# almost half the fast run again; every validation rule is also in test_ingest.py.
pytestmark = pytest.mark.fuzz


@dataclass(frozen=True)
class Expect:
    """What must become of an input file.

    status: "upload_refused" (the Files API answers `upload_status`), "failed"
    (errors.data must equal `errors`, or satisfy `errors` when it is a
    predicate) or "completed" (every request stored as sent).
    """

    status: str
    errors: ErrorList | Callable[[ErrorList], bool] | None = None
    upload_status: int | None = None


def failed(*errors: tuple[str, int | None]) -> Expect:
    return Expect("failed", list(errors))


def failed_where(predicate: Callable[[ErrorList], bool]) -> Expect:
    return Expect("failed", predicate)


def completed() -> Expect:
    return Expect("completed")


def upload_refused(status: int) -> Expect:
    return Expect("upload_refused", upload_status=status)


@dataclass(frozen=True)
class Case:
    data: bytes | Callable[[], bytes]  # a callable for the big ones: built when the case runs
    expect: Expect
    endpoint: str = CHAT
    settings: dict = field(default_factory=dict)

    def content(self) -> bytes:
        return self.data() if callable(self.data) else self.data


def case(data, expect: Expect, id: str, **kwargs):
    return pytest.param(Case(data, expect, **kwargs), id=id)


# --- Building lines ------------------------------------------------------------------------------


def dumps(value) -> bytes:
    """Raw UTF-8 JSON (non-ASCII characters as they are, not escaped)."""
    return json.dumps(value, ensure_ascii=False).encode()


def ok(custom_id: str = "ok", content: str = "hello") -> dict:
    return request_line(custom_id, content)


def between(line) -> bytes:
    """`line` (a dict, str or bytes) as line 2, between two valid requests."""
    return jsonl([request_line("first"), line, request_line("last")])


def without(key: str) -> dict:
    return {k: v for k, v in ok().items() if k != key}


def with_body(**changes) -> dict:
    line = ok()
    body = {**line["body"], **changes}
    return {**line, "body": {k: v for k, v in body.items() if v is not DROP}}


DROP = object()


def completion_line(custom_id: str, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": COMPLETIONS,
        "body": {"model": MODEL, **body},
    }


def nested(depth: int, leaf: str = "x") -> bytes:
    """A request whose message content nests `depth` lists around `leaf`."""
    head, tail = dumps(ok("deep")).split(b'"hello"')
    return head + b"[" * depth + json.dumps(leaf).encode() + b"]" * depth + tail


def utf16_file() -> bytes:
    return jsonl([request_line("a", "naïve café")]).decode().encode("utf-16")


def utf16_errors(errors: ErrorList) -> bool:
    # The first line (behind the UTF-16 BOM) is not UTF-8; what the NUL-interleaved
    # remainder is called is the validator's choice between the two codes.
    return (
        bool(errors)
        and errors[0] in {("invalid_encoding", 1), ("invalid_encoding", None)}
        and all(code in {"invalid_encoding", "invalid_json"} for code, _ in errors)
    )


def line_of_length(custom_id: str, length: int) -> bytes:
    """A valid request line of exactly `length` bytes (no line end)."""
    line = dumps(ok(custom_id, ""))
    head, tail = line.split(b'""')
    padding = length - len(line)
    assert padding >= 0
    return head + b'"' + b"a" * padding + b'"' + tail


def two_models() -> dict:
    from django.conf import settings

    return {MODEL: settings.SERVED_MODELS[MODEL], "other-model": "unused"}


SQL = "'; DROP TABLE batches_request; --"
INJECTIONS = {
    "custom_id": [
        SQL,
        "1' OR '1'='1",
        "<script>alert(document.cookie)</script>",
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "${jndi:ldap://x}",
        "%s %d %(id)s {0} {{7*7}}",
        'line\nbreak\ttab\\backslash"quote',
        "😀 مرحبا \u202eevil\u200b",
    ],
    "content": [
        SQL,
        "<script>alert(1)</script><img src=x onerror=alert(2)>",
        "${jndi:ldap://x}",
        "{{7*7}} {% debug %} ${7*7} #{7*7}",
        "\\N \\. \t tab \\t \r\n \\\\ COPY markers",
        "=cmd|' /C calc'!A0",
        "$(rm -rf /) `id` ; ls | cat",
    ],
}


def injection_file() -> bytes:
    lines = [ok(custom_id, "benign") for custom_id in INJECTIONS["custom_id"]]
    lines += [ok(f"content-{i}", content) for i, content in enumerate(INJECTIONS["content"])]
    return b"\n".join(dumps(line) for line in lines) + b"\n"


CASES = [
    # --- Broken JSON -------------------------------------------------------------------------
    case(between('{"custom_id": "a", "method": "POST"'), failed(("invalid_json", 2)), "truncated"),
    case(between(dumps(ok()) + b" garbage"), failed(("invalid_json", 2)), "trailing-garbage"),
    case(between(dumps(ok("x")) + dumps(ok("y"))), failed(("invalid_json", 2)), "two-objects"),
    case(between("{'custom_id': 'a', 'method': 'POST'}"), failed(("invalid_json", 2)), "single-q"),
    case(between(dumps(ok())[:-1] + b', "x": NaN}'), failed(("invalid_json", 2)), "nan-literal"),
    case(
        between(dumps(ok())[:-1] + b', "x": -Infinity}'),
        failed(("invalid_json", 2)),
        "infinity-literal",
    ),
    case(between('{"custom_id": "unterminated'), failed(("invalid_json", 2)), "unterminated-str"),
    case(between(dumps(ok())[:-1] + b", }"), failed(("invalid_json", 2)), "trailing-comma"),
    case(between("{custom_id: 1}"), failed(("invalid_json", 2)), "unquoted-keys"),
    case(between(dumps(ok()) + b" // comment"), failed(("invalid_json", 2)), "js-comment"),
    case(
        between(dumps(ok("ctl")).replace(b"hello", b"hel\x01lo")),
        failed(("invalid_json", 2)),
        "raw-control-char",
    ),
    case(
        between(dumps(ok("nul")).replace(b"hello", b"hel\x00lo")),
        failed(("invalid_json", 2)),
        "raw-nul-in-string",
    ),
    case(between(dumps(ok("nul")) + b"\x00"), failed(("invalid_json", 2)), "raw-nul-after-object"),
    case(between(b"\x00"), failed(("invalid_json", 2)), "raw-nul-line"),
    case(between(nested(5000)), failed(("invalid_json", 2)), "nesting-beyond-parser"),
    case(
        dumps(ok("a")) + b"\r" + dumps(ok("b")) + b"\r",
        failed(("invalid_json", 1)),
        "bare-cr-line-ends",
    ),
    case(b"\n\n{broken\n" + dumps(ok()) + b"\n", failed(("invalid_json", 3)), "blank-lines-count"),
    case(b"{bad\n" * 500, failed(*[("invalid_json", n) for n in range(1, 101)]), "errors-capped"),
    # --- Line length -------------------------------------------------------------------------
    case(
        between(dumps(ok("long", "word " * 400))),
        failed(("line_too_long", 2)),
        "line-over-limit",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(
        dumps(ok("a")) + b"\n" + line_of_length("long", SMALL_LINE_LIMIT + 1),
        failed(("line_too_long", 2)),
        "line-over-limit-at-eof",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(
        line_of_length("a", SMALL_LINE_LIMIT + 1) + b"\r\n" + dumps(ok("b")) + b"\r\n",
        failed(("line_too_long", 1)),
        "line-over-limit-by-one-crlf",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(
        jsonl([ok("a"), line_of_length("long", 3 * SMALL_LINE_LIMIT), "{broken", ok("b")]),
        failed(("line_too_long", 2), ("invalid_json", 3)),
        "line-over-limit-then-more-lines",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(
        line_of_length("a", SMALL_LINE_LIMIT) + b"\n" + line_of_length("b", SMALL_LINE_LIMIT),
        completed(),
        "line-at-limit-lf",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(
        line_of_length("a", SMALL_LINE_LIMIT) + b"\r\n" + line_of_length("b", SMALL_LINE_LIMIT),
        completed(),
        "line-at-limit-crlf",
        settings={"MAX_LINE_BYTES": SMALL_LINE_LIMIT},
    ),
    case(lambda: dumps(ok("big", "x" * 5_000_000)) + b"\n", completed(), "valid-5mb-line"),
    # --- Encodings ---------------------------------------------------------------------------
    case(
        between(dumps(ok("latin", "café")).decode().encode("latin-1")),
        failed(("invalid_encoding", 2)),
        "latin-1",
    ),
    case(utf16_file(), failed_where(utf16_errors), "utf-16-with-bom"),
    case(
        between(dumps(ok("bad")).replace(b"hello", b"\xff\xfe")),
        failed(("invalid_encoding", 2)),
        "invalid-utf8-bytes",
    ),
    case(
        between(dumps(ok("bad")).replace(b"hello", b"\xc0\xaf")),
        failed(("invalid_encoding", 2)),
        "overlong-utf8",
    ),
    case(
        between(dumps(ok("bad")).replace(b"hello", b"\xed\xa0\x80")),
        failed(("invalid_encoding", 2)),
        "utf8-encoded-surrogate",
    ),
    case(
        between(dumps(ok("bad")).replace(b"hello", b"\xe2\x82")),
        failed(("invalid_encoding", 2)),
        "truncated-utf8-sequence",
    ),
    case(
        between(dumps(ok("s")).replace(b"hello", b"\\ud800")),
        failed_where(lambda e: e in ([("invalid_json", 2)], [("invalid_encoding", 2)])),
        "lone-high-surrogate-escape",
    ),
    case(
        between(dumps(ok("s")).replace(b"hello", b"x\\udc00x")),
        failed_where(lambda e: e in ([("invalid_json", 2)], [("invalid_encoding", 2)])),
        "lone-low-surrogate-escape",
    ),
    case(jsonl([ok("pair", "smile \U0001f600")]), completed(), "surrogate-pair-escape-accepted"),
    case(between(BOM + dumps(ok("mid"))), failed(("invalid_json", 2)), "bom-not-at-start"),
    # --- custom_id ---------------------------------------------------------------------------
    case(between({**ok(), "custom_id": 7}), failed(("missing_custom_id", 2)), "custom-id-number"),
    case(between({**ok(), "custom_id": None}), failed(("missing_custom_id", 2)), "custom-id-null"),
    case(between({**ok(), "custom_id": ["a"]}), failed(("missing_custom_id", 2)), "custom-id-list"),
    case(
        between({**ok(), "custom_id": {"id": "a"}}),
        failed(("missing_custom_id", 2)),
        "custom-id-object",
    ),
    case(between({**ok(), "custom_id": ""}), failed(("missing_custom_id", 2)), "custom-id-empty"),
    case(between({**ok(), "custom_id": True}), failed(("missing_custom_id", 2)), "custom-id-bool"),
    case(
        between({**ok(), "custom_id": "x" * 513}),
        failed(("invalid_custom_id", 2)),
        "custom-id-513-chars",
    ),
    case(jsonl([ok("\U0001f600" * 512)]), completed(), "custom-id-512-four-byte-chars"),
    case(
        jsonl([ok("a"), ok("b"), ok("a")]),
        failed(("duplicate_custom_id", 3)),
        "duplicate-custom-id",
    ),
    case(jsonl([ok("Case"), ok("case"), ok("CASE")]), completed(), "custom-ids-differing-in-case"),
    # --- method ------------------------------------------------------------------------------
    case(between({**ok(), "method": "post"}), failed(("invalid_method", 2)), "method-lowercase"),
    case(between({**ok(), "method": "GET"}), failed(("invalid_method", 2)), "method-get"),
    case(between({**ok(), "method": 1}), failed(("invalid_method", 2)), "method-number"),
    case(between({**ok(), "method": None}), failed(("invalid_method", 2)), "method-null"),
    # --- url ---------------------------------------------------------------------------------
    case(between({**ok(), "url": "/v1/embeddings"}), failed(("invalid_url", 2)), "url-other"),
    case(between({**ok(), "url": 42}), failed(("invalid_url", 2)), "url-number"),
    case(
        between({**ok(), "url": "v1/chat/completions"}), failed(("invalid_url", 2)), "url-relative"
    ),
    case(
        between({**ok(), "url": "https://api.openai.com/v1/chat/completions"}),
        failed(("invalid_url", 2)),
        "url-absolute",
    ),
    case(
        between({**ok(), "url": "/v1/chat/completions/"}),
        failed(("invalid_url", 2)),
        "url-trailing-slash",
    ),
    case(between({**ok(), "url": COMPLETIONS}), failed(("invalid_url", 2)), "url-other-endpoint"),
    # --- body --------------------------------------------------------------------------------
    case(between({**ok(), "body": "text"}), failed(("invalid_body", 2)), "body-string"),
    case(between({**ok(), "body": [ok()["body"]]}), failed(("invalid_body", 2)), "body-list"),
    case(between({**ok(), "body": None}), failed(("invalid_body", 2)), "body-null"),
    case(between(with_body(model=5)), failed(("missing_model", 2)), "model-number"),
    case(between(with_body(model=None)), failed(("missing_model", 2)), "model-null"),
    case(between(with_body(model="")), failed(("missing_model", 2)), "model-empty"),
    case(between(with_body(model="gpt-4o")), failed(("model_not_found", 2)), "model-unknown"),
    case(
        between(with_body(model=MODEL.upper())),
        failed(("model_not_found", 2)),
        "model-wrong-case",
    ),
    case(between(with_body(messages="hello")), failed(("missing_messages", 2)), "messages-string"),
    case(between(with_body(messages=[])), failed(("missing_messages", 2)), "messages-empty"),
    case(
        between(with_body(messages={"role": "user", "content": "x"})),
        failed(("missing_messages", 2)),
        "messages-object",
    ),
    case(between(with_body(messages=None)), failed(("missing_messages", 2)), "messages-null"),
    case(
        jsonl([completion_line("a", prompt="Once"), completion_line("b")]),
        failed(("missing_prompt", 2)),
        "completions-missing-prompt",
        endpoint=COMPLETIONS,
    ),
    case(
        jsonl([completion_line("a", prompt="Once"), completion_line("b", prompt="")]),
        failed(("missing_prompt", 2)),
        "completions-empty-prompt",
        endpoint=COMPLETIONS,
    ),
    case(
        jsonl([completion_line("a", prompt="Once upon")]),
        completed(),
        "completions-accepted",
        endpoint=COMPLETIONS,
    ),
    # --- Missing fields, one at a time -------------------------------------------------------
    case(between(without("custom_id")), failed(("missing_custom_id", 2)), "no-custom-id"),
    case(between(without("method")), failed(("invalid_method", 2)), "no-method"),
    case(between(without("url")), failed(("invalid_url", 2)), "no-url"),
    case(between(without("body")), failed(("invalid_body", 2)), "no-body"),
    case(between(with_body(model=DROP)), failed(("missing_model", 2)), "no-body-model"),
    case(between(with_body(messages=DROP)), failed(("missing_messages", 2)), "no-body-messages"),
    case(between("{}"), failed(("missing_custom_id", 2)), "empty-object"),
    # --- Lines that are JSON but not an object -----------------------------------------------
    case(between("[1, 2, 3]"), failed(("invalid_line", 2)), "array-line"),
    case(between("42"), failed(("invalid_line", 2)), "number-line"),
    case(between('"just a string"'), failed(("invalid_line", 2)), "string-line"),
    case(between("null"), failed(("invalid_line", 2)), "null-line"),
    case(between("true"), failed(("invalid_line", 2)), "true-line"),
    # --- NUL characters ----------------------------------------------------------------------
    case(between(ok("n", "nul \u0000 here")), failed(("invalid_character", 2)), "nul-in-content"),
    case(between(ok("id\u0000")), failed(("invalid_character", 2)), "nul-in-custom-id"),
    case(between(with_body(**{"x\u0000": 1})), failed(("invalid_character", 2)), "nul-in-a-key"),
    case(
        between(nested(600, "\u0000")),
        failed(("invalid_json", 2)),  # too deep, before the NUL is looked for
        "nul-deep-in-nested-lists",
    ),
    case(between(nested(96, "\u0000")), failed(("invalid_character", 2)), "nul-at-depth-limit"),
    case(
        jsonl([ok("escaped", "a literal \\u0000 is text")]),
        completed(),
        "escaped-backslash-u0000-accepted",
    ),
    # Valid JSON nested deeper than MAX_JSON_DEPTH (100 levels) is refused on its line;
    # 300 is past what the JSON writer stores (254), which once stuck validation.
    case(jsonl([nested(300)]), failed(("invalid_json", 1)), "nesting-beyond-writer-limit"),
    case(jsonl([nested(97)]), failed(("invalid_json", 1)), "nesting-one-past-the-limit"),
    case(jsonl([nested(96)]), completed(), "nesting-at-the-limit"),
    # --- Injection strings: valid input, stored verbatim, never executed ----------------------
    case(injection_file(), completed(), "injection-strings"),
    case(jsonl([ok(SQL, SQL)]), completed(), "sql-injection-alone"),
    # --- Whole files -------------------------------------------------------------------------
    case(b"", upload_refused(400), "empty-file"),
    case(b"\n\n   \n\t\n", failed(("empty_file", None)), "only-blank-lines"),
    case(b"\r\n\r\n \r\n", failed(("empty_file", None)), "only-blank-crlf-lines"),
    case(BOM, failed(("empty_file", None)), "only-a-bom"),
    case(
        lambda: chat_requests(50_001),
        failed(("too_many_requests", 50_001)),
        "50001-lines",
    ),
    case(
        jsonl([request_line("a"), request_line("b", model="other-model")]),
        failed(("mixed_models", 2)),
        "mixed-models",
        settings={"SERVED_MODELS": two_models},
    ),
    case(BOM + jsonl([ok("a"), ok("b")]), completed(), "utf8-bom-accepted"),
    case(
        b"\r\n".join(dumps(ok(f"r{i}")) for i in range(3)) + b"\r\n",
        completed(),
        "crlf-accepted",
    ),
    case(
        BOM + dumps(ok("a")) + b"\r\n\r\n" + dumps(ok("b")) + b"\r\n  \n" + dumps(ok("c")),
        completed(),
        "bom-crlf-blank-lines-no-final-newline",
    ),
]


# --- The witness and the checks ------------------------------------------------------------------


@dataclass
class Snapshot:
    batch_json: dict
    output: bytes
    rows: list


@pytest.fixture
def responses() -> list:
    """Every (method, url, status) the SDK client saw."""
    return []


@pytest.fixture
def client(openai_client, responses):
    """The SDK client, recording every response (retries off, as in conftest).

    One connection per request: on a kept-alive connection each response from the
    live server waits out a delayed ACK (~40 ms), which would make this file slow.
    """

    def record(response) -> None:
        responses.append((response.request.method, str(response.request.url), response.status_code))

    http_client = openai.DefaultHttpxClient(
        event_hooks={"response": [record]}, headers={"Connection": "close"}
    )
    yield openai_client.with_options(http_client=http_client)
    http_client.close()


def request_rows(batch_id: str) -> list:
    return list(
        Request.objects.filter(batch__public_id=batch_id)
        .order_by("pk")
        .values_list("pk", "line", "custom_id", "status")
    )


def snapshot(client, batch_id: str) -> Snapshot:
    batch = client.batches.retrieve(batch_id)
    return Snapshot(
        batch_json=batch.model_dump(),
        output=client.files.content(batch.output_file_id).content,
        rows=request_rows(batch_id),
    )


@pytest.fixture
def witness(client, q_sync):
    """A batch that completed before the bad input arrived, and what it looked like."""
    file = client.files.create(file=("witness.jsonl", chat_requests(3)), purpose="batch")
    created = client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    before = snapshot(client, created.id)
    assert before.batch_json["status"] == "completed"
    assert len(before.rows) == 3 and before.output.count(b"\n") == 3
    return created.id, before


def requests_in(content: bytes) -> list[tuple[int, str, dict]]:
    """(line, custom_id, body) of each request in a valid input file, read independently."""
    found = []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if number == 1:
            raw = raw.removeprefix(BOM)
        if raw.strip():
            line = json.loads(raw)
            found.append((number, line["custom_id"], line["body"]))
    return found


def result_custom_ids(client, batch) -> list[str]:
    ids = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            text = client.files.content(file_id).content.decode()
            ids += [json.loads(line)["custom_id"] for line in text.splitlines()]
    return sorted(ids)


def check_failed(batch, expect: Expect) -> None:
    got = [(e.code, e.line) for e in batch.errors.data]
    if callable(expect.errors):
        assert expect.errors(got), got
    else:
        assert got == expect.errors
    assert all(e.message for e in batch.errors.data)
    assert batch.failed_at is not None and batch.output_file_id is None
    assert batch.request_counts.total == 0
    # Nothing from a failed file is stored.
    assert not Request.objects.filter(batch__public_id=batch.id).exists()
    assert not Chunk.objects.filter(batch__public_id=batch.id).exists()


def check_completed(client, batch, content: bytes) -> None:
    expected = requests_in(content)
    stored = list(
        Request.objects.filter(batch__public_id=batch.id)
        .order_by("line")
        .values_list("line", "custom_id", "body")
    )
    # Stored verbatim: the same custom_ids and bodies, character for character.
    assert [(line, custom_id) for line, custom_id, _ in stored] == [
        (line, custom_id) for line, custom_id, _ in expected
    ]
    for (_, custom_id, body), (_, _, sent) in zip(stored, expected, strict=True):
        assert body == sent, custom_id
    assert batch.request_counts.total == len(expected)
    assert batch.request_counts.completed + batch.request_counts.failed == len(expected)
    assert result_custom_ids(client, batch) == sorted(custom_id for _, custom_id, _ in expected)


@pytest.mark.parametrize("bad", CASES)
def test_a_bad_input_is_refused_cleanly_and_changes_nothing(
    bad: Case, client, responses, witness, settings
):
    witness_id, before = witness
    for name, value in bad.settings.items():
        setattr(settings, name, value() if callable(value) else value)
    content = bad.content()
    expect = bad.expect
    files_before = File.objects.count()

    if expect.status == "upload_refused":
        with pytest.raises(openai.APIStatusError) as refused:
            client.files.create(file=("in.jsonl", content), purpose="batch")
        assert refused.value.status_code == expect.upload_status
        assert set(refused.value.body) == {"message", "type", "param", "code"}
        assert refused.value.body["param"] == "file"
        assert File.objects.count() == files_before
        assert Batch.objects.count() == 1
    else:
        file = client.files.create(file=("in.jsonl", content), purpose="batch")
        assert file.bytes == len(content)
        created = client.batches.create(
            input_file_id=file.id, endpoint=bad.endpoint, completion_window="24h"
        )
        batch = client.batches.retrieve(created.id)
        if expect.status == "failed":
            assert batch.status == "failed", batch.errors
            check_failed(batch, expect)
        else:
            assert batch.status == "completed", batch.errors
            check_completed(client, batch, content)
        # The input file is kept as uploaded, whatever became of the batch.
        assert client.files.content(file.id).content == content

    # The server is healthy and the witness untouched.
    models = client.models.with_raw_response.list()
    assert models.status_code == 200
    assert MODEL in [m.id for m in models.parse().data]
    assert snapshot(client, witness_id) == before
    assert not [r for r in responses if r[2] >= 500], responses
