"""The quickstart's real model through the whole product: the official SDK, a
live server, real workers and vLLM's CPU build. It answers in English, follows
the demo's recruiter rubric (a json_schema response format), and a seed
reproduces a sampled answer."""

import json
import re

import jsonschema
import pytest

from batches import demo
from batches.engines.instruct_model import gguf_path
from tests.factories import CHAT, jsonl
from tests.helpers import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.subprocess]

NAME = "smollm2-135m-instruct"
# Questions a 135M instruct model answers reliably under greedy decoding; the
# answer must name the word, which token soup never does.
FACTS = {
    "capital": ("What is the capital of France?", "paris"),
    "week": ("How many days are in a week?", "7"),
}


def line(custom_id: str, content: str, **body) -> dict:
    messages = [{"role": "user", "content": content}]
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": NAME, "messages": messages, **body},
    }


def test_the_instruct_model_answers_follows_the_rubric_and_reproduces_seeds(
    openai_client, processes, subprocess_env, instruct_model, settings
):
    settings.SERVED_MODELS = {NAME: str(instruct_model)}
    env = {
        **subprocess_env,
        "ENGINE": "vllm",
        "MODELS": f"{NAME}={instruct_model}",
        "VLLM_ENGINE_ARGS": json.dumps(settings.INSTRUCT_MODEL_ENGINE_ARGS),
    }
    processes.qcluster(env)
    processes.qcluster(env, cluster="engine")

    seeded = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 40}
    screenings = [
        json.loads(screening)
        for sampling in demo.samplings(seed=42)
        for screening in demo.input_lines(demo.profiles(4, 42), model=NAME, sampling=sampling)
    ]
    for i, screening in enumerate(screenings):
        screening["custom_id"] = f"rubric-{i}"
    lines = [
        *(line(key, q, temperature=0, max_tokens=24) for key, (q, _) in FACTS.items()),
        line("story", "Describe a good team lead in two sentences.", temperature=0, max_tokens=48),
        *screenings,
        line("seed", "Write a short job ad for a backend engineer.", seed=11, **seeded),
    ]
    batch = run(openai_client, lines, processes)
    output = _output(openai_client, batch)
    answers = {key: body["choices"][0]["message"]["content"] for key, body in output.items()}

    for key, (_, expected) in FACTS.items():
        assert expected in answers[key].lower(), answers[key]
    # Greedy decoding on our converted weights in vLLM gives what transformers
    # gives on its own dequantization of the GGUF.
    assert {key: answers[key] for key in FACTS} == transformers_greedy(
        {key: question for key, (question, _) in FACTS.items()}, max_new_tokens=24
    )
    # English prose, not token soup: mostly dictionary-shaped words.
    words = re.findall(r"[A-Za-z']+", answers["story"])
    assert len(words) >= 8 and sum(w.lower() in COMMON for w in words) >= len(words) // 4, answers

    # The demo's recruiter rubric (json_schema): every answer that ended by
    # itself, greedy or sampled, is a valid evaluation.
    for i in range(len(screenings)):
        choice = output[f"rubric-{i}"]["choices"][0]
        if choice["finish_reason"] != "length":
            jsonschema.validate(json.loads(choice["message"]["content"]), demo.EVALUATION_SCHEMA)
    assert sum(demo.evaluation(answers[f"rubric-{i}"]) is not None for i in range(8)) >= 6
    assert all(body["model"] == NAME for body in output.values())

    # The sampled answer again, in a later batch of its own: the same text.
    again = _output(openai_client, run(openai_client, [lines[-1]], processes))
    assert again["seed"]["choices"][0]["message"]["content"] == answers["seed"]
    assert len(answers["seed"]) > 20


def transformers_greedy(questions: dict[str, str], *, max_new_tokens: int) -> dict[str, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    answers = {}
    for key, question in questions.items():
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        generated = model.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False)
        answers[key] = tokenizer.decode(generated[0][prompt.shape[1] :], skip_special_tokens=True)
    return answers


def run(client, lines: list[dict], processes):
    input_file = client.files.create(file=("smol.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=input_file.id, endpoint=CHAT, completion_window="24h"
    )
    batch = wait_for(
        lambda: (b := client.batches.retrieve(batch.id)).status in {"completed", "failed"} and b,
        timeout=600,
        interval=0.5,
        message=processes.logs,
    )
    assert batch.status == "completed" and batch.request_counts.failed == 0, processes.logs()
    return batch


def _output(client, batch) -> dict:
    lines = client.files.content(batch.output_file_id).text.splitlines()
    return {x["custom_id"]: x["response"]["body"] for x in map(json.loads, lines)}


# Frequent English function words and team vocabulary.
COMMON = set(
    "a an the and or but of to in on at for with as by from is are was be been being it its "
    "this that these those he she they them their his her we our you your who which what when "
    "good great team lead leader leads leading person people work works working others members "
    "member is can will should must has have having helps help helping clear communication "
    "communicates goals support supports trust listens listening makes make decisions".split()
)
