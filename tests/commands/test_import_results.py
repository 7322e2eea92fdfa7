import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from batches.files import scratch_dir
from batches.importing import results_import
from batches.models import Batch, File, Request
from tests.factories import CHAT, COMPLETIONS, MODEL, jsonl, request_line

pytestmark = pytest.mark.django_db


def completion(index: int, *, model: str = MODEL, cached: int = 0) -> dict:
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "created": 1764000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"hire candidate {index}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10 + index,
            "completion_tokens": 4,
            "total_tokens": 14 + index,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def answered(custom_id: str, status_code: int, body: dict | None, error=None) -> dict:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": f"req_{custom_id}", "body": body},
        "error": error,
    }


def not_run(custom_id: str, code: str = "batch_cancelled") -> dict:
    error = {"code": code, "message": "The batch was cancelled before this request ran."}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": error,
    }


REJECTED = {
    "error": {
        "message": "The prompt is longer than the model's context.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def our_output() -> bytes:
    """Lines as our finalize writes them: completed, rejected (400), cancelled."""
    return jsonl(
        [
            answered("req-0", 200, completion(0, cached=3)),
            answered("req-1", 400, REJECTED),
            not_run("req-2"),
            answered("req-3", 200, completion(3)),
        ]
    )


def our_input() -> bytes:
    return jsonl([request_line(f"req-{i}", f"evaluate candidate {i}") for i in range(5)])


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_results", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def leftover_scratch() -> list:
    return list(scratch_dir().glob("import-*"))


@pytest.fixture
def output_path(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(our_output())
    return path


@pytest.fixture
def input_path(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(our_input())
    return path


def test_it_imports_our_output_file_with_its_input(
    output_path, input_path, django_user_model, carol_client
):
    out, _ = run(str(output_path), "--input", str(input_path))

    batch = Batch.objects.select_related("owner", "input_file", "output_file").get()
    assert out.strip() == (
        f"Imported 4 results (2 completed, 2 failed) as {batch.public_id}; 0 lines skipped."
    )
    assert batch.owner.username == "import" and not batch.owner.has_usable_password()
    assert (batch.status, batch.endpoint, batch.model) == ("completed", CHAT, MODEL)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert (batch.total_requests, batch.completed_requests, batch.failed_requests) == (4, 2, 2)
    assert (batch.input_tokens, batch.output_tokens, batch.cached_tokens) == (23, 8, 3)
    assert batch.metadata == {
        "imported_from": "results.jsonl",
        "import_sha256": hashlib.sha256(our_output()).hexdigest(),
    }

    assert (batch.output_file.purpose, batch.output_file.filename) == (
        "batch_output",
        "results.jsonl",
    )
    assert batch.output_file.bytes == len(our_output())
    with batch.output_file.content.open("rb") as handle:
        assert handle.read() == our_output()
    assert (batch.input_file.purpose, batch.input_file.filename) == ("batch", "requests.jsonl")
    with batch.input_file.content.open("rb") as handle:
        assert handle.read() == our_input()
    assert output_path.read_bytes() == our_output()  # the original stays where it was
    assert leftover_scratch() == []

    rows = {r.custom_id: r for r in Request.objects.filter(batch=batch).order_by("line")}
    assert [(r.line, r.status, r.status_code) for r in rows.values()] == [
        (1, "completed", 200),
        (2, "failed", 400),
        (3, "failed", None),
        (4, "completed", 200),
    ]
    done, rejected, cancelled = rows["req-0"], rows["req-1"], rows["req-2"]
    assert done.body == request_line("req-0", "evaluate candidate 0")["body"]
    assert done.response == completion(0, cached=3) and done.error is None
    assert (done.prompt_tokens, done.completion_tokens, done.cached_tokens) == (10, 4, 3)
    assert done.prompt_text == "evaluate candidate 0"
    assert done.response_text == "hire candidate 0"
    assert rejected.response == REJECTED and rejected.prompt_tokens is None
    assert rejected.response_text == "The prompt is longer than the model's context."
    assert cancelled.response is None and cancelled.error["code"] == "batch_cancelled"
    assert cancelled.prompt_text == "evaluate candidate 2" and cancelled.response_text == ""
    assert all(r.attempts == 1 and r.finished_at for r in rows.values())

    # The viewer shows imported results like any others.
    html = carol_client.get(f"/results/{done.pk}/").content.decode()
    assert "evaluate candidate 0" in html and "hire candidate 0" in html
    listing = carol_client.get(f"/results/?batch={batch.public_id}")
    assert listing.status_code == 200 and "hire candidate 3" in listing.content.decode()


def test_it_imports_without_the_input_file(output_path, alice, carol_client):
    run(str(output_path), "--owner", "alice")

    batch = Batch.objects.get()
    assert batch.owner == alice and batch.input_file is None
    assert File.objects.filter(owner=alice).count() == 1
    rows = list(Request.objects.filter(batch=batch).order_by("line"))
    assert [r.body for r in rows] == [{"model": MODEL, "messages": []}] * 4
    assert rows[0].prompt_text == "" and rows[0].messages == []
    assert rows[0].response_text == "hire candidate 0"
    assert rows[1].response_text == "The prompt is longer than the model's context."
    assert carol_client.get(f"/results/{rows[0].pk}/").status_code == 200


def test_it_imports_vllm_run_batch_output(tmp_path):
    error_response = {
        "error": {
            "message": "max_tokens must be at least 1, got -1.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    body = completion(0, model="gemma-3-4b-it")
    del body["usage"]["prompt_tokens_details"]  # vLLM leaves it null or out
    path = tmp_path / "vllm_output.jsonl"
    path.write_bytes(
        jsonl(
            [
                {
                    "id": "vllm-5c0e",
                    "custom_id": "ok",
                    "response": {"status_code": 200, "request_id": "vllm-batch-1", "body": body},
                    "error": None,
                },
                {
                    "id": "vllm-77ad",
                    "custom_id": "bad-params",
                    "response": {"status_code": 400, "request_id": "vllm-batch-2", "body": None},
                    "error": error_response,
                },
                {
                    "id": "vllm-9f31",
                    "custom_id": "streamed",
                    "response": {"status_code": 400, "request_id": "vllm-batch-3", "body": None},
                    "error": "Request must not be sent in stream mode",
                },
            ]
        )
    )

    run(str(path))

    batch = Batch.objects.get()
    assert batch.model == "gemma-3-4b-it"
    assert (batch.completed_requests, batch.failed_requests, batch.input_tokens) == (1, 2, 10)
    ok, bad, streamed = Request.objects.filter(batch=batch).order_by("line")
    assert (ok.status, ok.cached_tokens, ok.response_text) == (
        "completed",
        None,
        "hire candidate 0",
    )
    assert (bad.status, bad.status_code, bad.response) == ("failed", 400, error_response)
    assert bad.response_text == "max_tokens must be at least 1, got -1."
    assert streamed.response["error"]["message"] == "Request must not be sent in stream mode"
    assert streamed.response_text == "Request must not be sent in stream mode"


def test_it_reports_and_skips_malformed_lines(tmp_path, settings):
    settings.MAX_LINE_BYTES = 2000
    path = tmp_path / "messy.jsonl"
    path.write_bytes(
        jsonl(
            [
                answered("a", 200, completion(0)),
                "",
                "{not json",
                "[1, 2]",
                {"response": None, "error": {"code": "x", "message": "no id"}},
                answered("a", 200, completion(1)),
                answered("b", 200, None),
                {"custom_id": "c", "response": None, "error": None},
                "x" * 3000,
                answered("d", 500, {"error": {"message": "engine died", "type": "server_error"}}),
            ]
        )
    )

    out, err = run(str(path))

    batch = Batch.objects.get()
    rows = list(Request.objects.filter(batch=batch).order_by("line"))
    assert [(r.line, r.custom_id) for r in rows] == [(1, "a"), (10, "d")]
    assert (batch.total_requests, batch.completed_requests, batch.failed_requests) == (2, 1, 1)
    assert out.strip().endswith("; 7 lines skipped.")
    reported = [line for line in err.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert "not valid JSON" in reported[0]
    assert reported[1] == "line 4: not a JSON object"
    assert reported[2] == "line 5: no custom_id (a non-empty string)"
    assert reported[3] == "line 6: custom_id 'a' appears on an earlier line"
    assert reported[4] == "line 7: status 200 without a response body"
    assert reported[5] == "line 8: neither a response nor an error"
    assert reported[6] == "line 9: longer than 2000 bytes"


def test_reimporting_the_same_file_changes_nothing(output_path, input_path, alice, bob):
    first = results_import(
        output_path=output_path, input_path=input_path, owner=alice, model=None, endpoint=CHAT
    )
    assert not first.already_imported and first.imported == 4

    again = results_import(
        output_path=output_path, input_path=None, owner=alice, model=None, endpoint=CHAT
    )
    out, _ = run(str(output_path), "--owner", "alice", "--input", str(input_path))

    assert again.already_imported and again.batch_id == first.batch_id and again.imported == 4
    assert out.strip() == (
        f"results.jsonl was already imported as {first.batch_id} (4 results); nothing changed."
    )
    assert (Batch.objects.count(), File.objects.count(), Request.objects.count()) == (1, 2, 4)
    assert leftover_scratch() == []

    # Another owner, or other bytes, is another import.
    results_import(output_path=output_path, input_path=None, owner=bob, model=None, endpoint=CHAT)
    output_path.write_bytes(our_output() + jsonl([not_run("req-4")]))
    changed = results_import(
        output_path=output_path, input_path=None, owner=alice, model=None, endpoint=CHAT
    )
    assert not changed.already_imported and changed.imported == 5
    assert Batch.objects.count() == 3


def test_output_lines_missing_from_the_input_file_are_skipped(output_path, tmp_path):
    partial_input = tmp_path / "partial.jsonl"
    partial_input.write_bytes(jsonl([request_line("req-0"), request_line("req-3")]))

    out, err = run(str(output_path), "--input", str(partial_input))

    batch = Batch.objects.get()
    assert sorted(batch.requests.values_list("custom_id", flat=True)) == ["req-0", "req-3"]
    assert err.splitlines() == [
        "Created user 'import' (no password).",
        "line 2: custom_id 'req-1' is not in the input file",
        "line 3: custom_id 'req-2' is not in the input file",
    ]
    assert out.strip().endswith("; 2 lines skipped.")


def test_the_model_must_be_known_when_no_response_names_it(tmp_path, input_path):
    path = tmp_path / "cancelled.jsonl"
    path.write_bytes(jsonl([not_run("req-0"), not_run("req-1", "batch_expired")]))

    with pytest.raises(CommandError, match="--model"):
        run(str(path))
    assert not Batch.objects.exists() and not File.objects.exists()
    assert leftover_scratch() == []

    run(str(path), "--model", "gemma-3-4b-it")
    batch = Batch.objects.get()
    assert batch.model == "gemma-3-4b-it" and batch.failed_requests == 2
    assert batch.requests.first().body == {"model": "gemma-3-4b-it", "messages": []}

    # With the input file, its bodies name the model.
    batch.delete()
    File.objects.all().delete()
    run(str(path), "--input", str(input_path))
    assert Batch.objects.get().model == MODEL


def test_a_file_with_nothing_importable_creates_nothing(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"\n{oops\n")

    with pytest.raises(CommandError, match="no importable results"):
        run(str(path), "--model", MODEL)
    assert not Batch.objects.exists() and not File.objects.exists()
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "missing.jsonl"))


def test_it_imports_completions_output(tmp_path):
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": MODEL,
        "choices": [{"index": 0, "text": " once upon a time", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
    path = tmp_path / "completions.jsonl"
    path.write_bytes(jsonl([answered("p-0", 200, body)]))

    run(str(path), "--endpoint", COMPLETIONS)

    batch = Batch.objects.get()
    row = batch.requests.get()
    assert batch.endpoint == COMPLETIONS and row.body == {"model": MODEL, "prompt": ""}
    assert row.response_text == " once upon a time" and row.prompt_text == ""


def test_an_interrupted_import_leaves_nothing(output_path, input_path, alice):
    def interrupt(lines: int) -> None:
        if lines == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results_import(
            output_path=output_path,
            input_path=input_path,
            owner=alice,
            model=None,
            endpoint=CHAT,
            progress=interrupt,
        )
    assert not Batch.objects.exists() and not File.objects.exists()
    assert leftover_scratch() == []


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only_and_rows_go_in_slices(tmp_path):
    path = tmp_path / "large.jsonl"
    path.write_bytes(jsonl([answered(f"r-{i}", 200, completion(i)) for i in range(1001)]))

    terminal = Terminal()
    call_command("import_results", str(path), stdout=StringIO(), stderr=terminal)
    assert "\r1,000 lines…" in terminal.getvalue()
    assert Request.objects.count() == 1001
    assert Batch.objects.get().input_tokens == sum(10 + i for i in range(1001))

    piped = StringIO()
    path.write_bytes(path.read_bytes() + b"\n")  # other bytes: a second import
    call_command("import_results", str(path), stdout=StringIO(), stderr=piped)
    assert "lines…" not in piped.getvalue()
    assert Request.objects.count() == 2002
