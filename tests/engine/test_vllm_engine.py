"""The real vLLM engine (CPU build) on the tiny random-weight model."""

import json

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion

from batches.engines.base import EngineRequest
from batches.engines.params import CHAT, COMPLETIONS

pytestmark = pytest.mark.engine


@pytest.fixture(scope="session")
def engine(tiny_model):
    from batches.engines.vllm import VLLMEngine

    engine = VLLMEngine("tiny-chat", str(tiny_model))
    yield engine
    engine.close()


def run(engine, *bodies, endpoint=CHAT) -> dict:
    requests = [EngineRequest(key=i, endpoint=endpoint, body=body) for i, body in enumerate(bodies)]
    results = {r.key: r for r in engine.run(requests, should_stop=lambda: False)}
    assert sorted(results) == list(range(len(bodies)))
    return results


def chat(content="Evaluate this candidate.", **fields) -> dict:
    return {"model": "tiny-chat", "messages": [{"role": "user", "content": content}], **fields}


def test_it_answers_with_a_chat_completion_and_usage(engine):
    result = run(engine, chat(max_tokens=8, ignore_eos=True))[0]
    assert result.status_code == 200
    completion = ChatCompletion.model_validate(result.body)
    assert completion.model == "tiny-chat"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 8 == result.completion_tokens
    assert completion.usage.prompt_tokens == result.prompt_tokens > 5
    assert result.latency_ms >= 0


def test_sampling_parameters_reach_the_engine(engine):
    def sampled(seed):
        body = chat(seed=seed, temperature=1.0, max_tokens=12, ignore_eos=True)
        return run(engine, body)[0].body["choices"][0]["message"]["content"]

    # Run alone each time: the random model's logits are nearly flat, so batch
    # composition alone can change a sample.
    assert sampled(11) == sampled(11) != sampled(12)
    results = run(
        engine,
        chat(n=3, max_completion_tokens=4, ignore_eos=True, temperature=0.8, top_p=0.9),
        chat(max_tokens=6, ignore_eos=True, presence_penalty=1.5, frequency_penalty=1.0),
    )
    assert [c["index"] for c in results[0].body["choices"]] == [0, 1, 2]
    assert results[0].completion_tokens == 3 * 4
    assert results[1].completion_tokens == 6


def test_greedy_decoding_is_repeatable_and_stop_strings_cut_the_text(engine):
    greedy = run(engine, chat(temperature=0, max_tokens=20, ignore_eos=True))[0]
    text = greedy.body["choices"][0]["message"]["content"]
    stop_word = text.split()[3]
    stopped = run(engine, chat(temperature=0, max_tokens=20, ignore_eos=True, stop=[stop_word]))[0]
    choice = stopped.body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert stop_word not in choice["message"]["content"]
    assert text.startswith(choice["message"]["content"])


def test_chat_logprobs_have_openais_shape(engine):
    result = run(engine, chat(max_tokens=5, ignore_eos=True, logprobs=True, top_logprobs=3))[0]
    completion = ChatCompletion.model_validate(result.body)
    content = completion.choices[0].logprobs.content
    assert len(content) == 5
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        assert bytes(token.bytes).decode(errors="replace") is not None
    assert "".join(t.token for t in content) == completion.choices[0].message.content


def test_completions_run_with_text_and_token_prompts(engine):
    results = run(
        engine,
        {
            "model": "tiny-chat",
            "prompt": "Once upon a",
            "max_tokens": 4,
            "ignore_eos": True,
            "logprobs": 2,
        },
        {"model": "tiny-chat", "prompt": [5, 6, 7, 8], "max_tokens": 3, "ignore_eos": True},
        endpoint=COMPLETIONS,
    )
    first = Completion.model_validate(results[0].body)
    assert first.object == "text_completion"
    assert len(first.choices[0].logprobs.tokens) == 4
    assert len(first.choices[0].logprobs.top_logprobs[0]) == 2
    assert results[1].prompt_tokens == 4 and results[1].completion_tokens == 3


def test_json_schema_response_format_constrains_the_output(engine):
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string", "enum": ["hire", "reject"]}},
        "required": ["verdict"],
        "additionalProperties": False,
    }
    results = run(
        engine,
        chat(
            max_tokens=200,
            response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": schema}},
        ),
        chat(max_tokens=200, response_format={"type": "json_object"}, temperature=0),
    )
    verdict = json.loads(results[0].body["choices"][0]["message"]["content"])
    assert verdict["verdict"] in {"hire", "reject"}
    assert results[1].status_code == 200
    assert results[1].body["choices"][0]["message"]["content"].lstrip().startswith("{")


def test_a_request_the_engine_rejects_fails_alone(engine):
    results = run(
        engine,
        chat(max_tokens=3),
        chat("word " * 5000, max_tokens=3),  # longer than the 4096-token context
        chat(max_tokens=3, temperature=-1),
        chat(
            max_tokens=3,
            response_format={
                "type": "json_schema",
                "json_schema": {"schema": {"type": "nonsense"}},
            },
        ),
        chat(max_tokens=3),
    )
    assert [results[i].status_code for i in range(5)] == [200, 400, 400, 400, 200]
    too_long = results[1].body["error"]
    assert too_long["type"] == "invalid_request_error" and "context length" in too_long["message"]


def test_should_stop_abandons_the_rest(engine):
    requests = [
        EngineRequest(key=i, endpoint=CHAT, body=chat(max_tokens=2 + 4 * i, ignore_eos=True))
        for i in range(50)
    ]
    seen = []
    for result in engine.run(requests, should_stop=lambda: len(seen) >= 1):
        seen.append(result)
    assert 1 <= len(seen) < 50
    assert not engine.llm.llm_engine.has_unfinished_requests()


def long_prompt(i: int, sentences: int = 40) -> str:
    """About 12 tokens a sentence: 40 make a prompt of ~490 tokens, 60 of ~730."""
    return " ".join(f"candidate {i} answered question {j} with care." for j in range(sentences))


def test_a_seeded_batch_that_splits_prefills_completes_and_repeats(engine):
    """With chunked prefill, 40 prompts of ~490 tokens (over 19k tokens against a
    4,096-token step budget) split prefills, and the CPU generator of a seeded
    request cannot be rewound: the step raised "CPU Generator does not use offset"."""
    scheduler = engine.llm.llm_engine.vllm_config.scheduler_config
    assert not scheduler.enable_chunked_prefill
    assert scheduler.max_num_batched_tokens >= engine.llm.model_config.max_model_len

    def texts(seed: int) -> list[str]:
        bodies = [
            chat(long_prompt(i), seed=seed, temperature=1.0, max_tokens=8, ignore_eos=True)
            for i in range(40)
        ]
        results = run(engine, *bodies)
        assert {r.status_code for r in results.values()} == {200}
        assert results[0].prompt_tokens > 400
        return [results[i].body["choices"][0]["message"]["content"] for i in range(40)]

    first = texts(3)
    assert texts(3) == first  # the second run also reads its prompts from the prefix cache
    assert texts(4) != first


@pytest.fixture(scope="module")
def chunked_engine(tiny_model):
    """An engine that splits prefills at 512 tokens, as vLLM does by default elsewhere."""
    from batches.engines.vllm import VLLMEngine

    engine = VLLMEngine(
        "tiny-chat",
        str(tiny_model),
        {"enable_chunked_prefill": True, "max_num_batched_tokens": 512},
    )
    yield engine
    engine.close()


def test_a_failed_step_drops_what_the_engine_held_and_it_runs_on(chunked_engine):
    from batches.engines.base import EngineError

    admitted = []
    requests = [
        EngineRequest(key=i, endpoint=CHAT, body=chat(f"short {i}", max_tokens=4)) for i in range(3)
    ] + [EngineRequest(key=3, endpoint=CHAT, body=chat(long_prompt(3, 60), seed=3, max_tokens=4))]
    with pytest.raises(EngineError, match=r"^RuntimeError: CPU Generator does not use offset"):
        list(chunked_engine.run(requests, should_stop=lambda: False, admit=admitted.extend))
    assert admitted == [0, 1, 2, 3]  # admitted, as one window, before anything ran
    assert not chunked_engine.llm.llm_engine.has_unfinished_requests()
    # The engine still works: the short requests run; the seeded one, longer than a
    # step, is split and fails even alone.
    assert all(r.ok for r in run(chunked_engine, *(r.body for r in requests[:3])).values())
    with pytest.raises(EngineError):
        run(chunked_engine, requests[3].body)


@pytest.mark.django_db(transaction=True)
def test_a_request_that_fails_alone_in_vllm_fails_at_once_and_the_chunk_goes_on(
    chunked_engine, alice, monkeypatch
):
    from batches import engines
    from batches.models import Batch, Chunk, Request
    from batches.pipeline.execution import chunk_run
    from tests.factories import ingest, jsonl, request_line

    monkeypatch.setitem(engines._loaded, "tiny-chat", chunked_engine)
    lines = [request_line(f"r{i}", f"short {i}", max_tokens=4) for i in range(6)]
    # Longer than a step's 512 tokens: its prefill is split even when it runs alone.
    lines.insert(2, request_line("seeded-long", long_prompt(2, 60), seed=3, max_tokens=4))
    batch = ingest(alice, jsonl(lines))

    chunk_run(chunk_id=Chunk.objects.get(batch=batch).pk)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.FINALIZING
    assert (batch.completed_requests, batch.failed_requests) == (6, 1)
    failed = Request.objects.get(batch=batch, status="failed")
    assert failed.custom_id == "seeded-long" and failed.attempts == 1
    assert failed.status_code == 500
    assert failed.response["error"]["message"] == (
        "RuntimeError: CPU Generator does not use offset"
    )
