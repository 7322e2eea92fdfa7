"""Engines admit requests in a bounded window, and report it before they send them.

The vLLM engine's admission is tested on the real engine in test_vllm_engine.py;
here the test double and the `openai` engine, whose server is an httpx mock
transport: what is checked is when requests leave, not what a server answers.
"""

import json

import httpx

from batches.engines.base import EngineRequest
from batches.engines.openai import OpenAIEngine
from batches.engines.params import CHAT
from batches.engines.testing import DeterministicTestEngine


def requests(count: int) -> list[EngineRequest]:
    return [
        EngineRequest(
            key=i,
            endpoint=CHAT,
            body={"model": "tiny-chat", "messages": [{"role": "user", "content": str(i)}]},
        )
        for i in range(count)
    ]


def run_and_record(engine, count: int, *, admitted: list[int], stop_after: int | None = None):
    """Run `count` requests, recording admissions in `admitted`; return (result keys,
    the most requests held at once)."""
    answered: list[int] = []
    most_held = 0

    def admit(keys: list[int]) -> None:
        nonlocal most_held
        admitted.extend(keys)
        most_held = max(most_held, len(admitted) - len(answered))

    def should_stop() -> bool:
        return stop_after is not None and len(answered) >= stop_after

    for result in engine.run(requests(count), should_stop=should_stop, admit=admit):
        assert result.key in admitted  # nothing is answered before it was admitted
        answered.append(result.key)
    return answered, most_held


def test_the_test_engine_admits_a_window_at_a_time():
    engine = DeterministicTestEngine("tiny-chat")
    count = 3 * engine.window + 5
    admitted: list[int] = []
    answered, most_held = run_and_record(engine, count, admitted=admitted)
    assert admitted == list(range(count)) and sorted(answered) == list(range(count))
    assert most_held == engine.window

    admitted.clear()
    run_and_record(engine, count, admitted=admitted, stop_after=1)
    assert admitted == list(range(engine.window))  # the rest was never sent, nor charged


def test_the_openai_engine_admits_before_it_sends_and_holds_at_most_its_window():
    admitted: list[int] = []
    sent: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        key = int(json.loads(request.content)["messages"][0]["content"])
        assert key in admitted, "sent before it was admitted"
        sent.append(key)
        return httpx.Response(200, json={"choices": [], "usage": {"prompt_tokens": 1}})

    engine = OpenAIEngine(
        "tiny-chat", urls=["http://engine.test/v1"], api_key="", concurrency=4, timeout=5
    )
    engine._client = httpx.Client(transport=httpx.MockTransport(server))
    try:
        answered, most_held = run_and_record(engine, 40, admitted=admitted)
        assert admitted == list(range(40))
        assert sorted(sent) == sorted(answered) == list(range(40))
        assert engine.window == 5 and most_held <= engine.window

        admitted.clear()
        run_and_record(engine, 40, admitted=admitted, stop_after=1)
        assert admitted == list(range(engine.window))
    finally:
        engine.close()
