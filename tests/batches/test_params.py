import pytest

from batches.engines.params import CHAT, COMPLETIONS, InvalidRequest, parse_request

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_it_maps_the_openai_sampling_fields():
    parsed = parse_request(
        CHAT,
        {
            "messages": MESSAGES,
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "max_tokens": 10,
            "stop": "END",
            "seed": 7,
            "n": 3,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "logprobs": True,
            "top_logprobs": 4,
            "logit_bias": {"42": -100},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "object"}},
            },
        },
    )
    options = parsed.options
    assert parsed.messages == MESSAGES
    assert (options.temperature, options.top_p, options.max_tokens) == (0.2, 0.9, 64)
    assert (options.stop, options.seed, options.n) == (("END",), 7, 3)
    assert (options.presence_penalty, options.frequency_penalty) == (0.5, -0.5)
    assert options.logprobs == 4
    assert options.logit_bias == {42: -100.0}
    assert options.json_schema == {"type": "object"} and not options.json_object


def test_defaults_leave_choices_to_the_engine():
    options = parse_request(CHAT, {"messages": MESSAGES}).options
    assert options.max_tokens is None and options.temperature is None
    assert options.logprobs is None and options.n == 1


def test_logprobs_without_top_logprobs_means_the_sampled_token_only():
    assert parse_request(CHAT, {"messages": MESSAGES, "logprobs": True}).options.logprobs == 0


def test_text_parts_are_joined_and_json_object_is_understood():
    parsed = parse_request(
        CHAT,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
            "response_format": {"type": "json_object"},
        },
    )
    assert parsed.messages[0]["content"] == "a\nb"
    assert parsed.options.json_object


def test_completions_take_a_prompt_and_integer_logprobs():
    parsed = parse_request(COMPLETIONS, {"prompt": ["Once"], "logprobs": 2, "max_tokens": 5})
    assert (parsed.prompt, parsed.options.logprobs, parsed.options.max_tokens) == ("Once", 2, 5)
    assert parse_request(COMPLETIONS, {"prompt": [1, 2, 3]}).prompt == [1, 2, 3]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"seed": "x"}, "seed"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logit_bias": {"x": 1}}, "logit_bias"),
        ({"logit_bias": {"1": 101}}, "logit_bias"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema.schema"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content",
        ),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"stream": True}, "stream"),
    ],
)
def test_it_rejects_malformed_fields_with_the_param(body, param):
    with pytest.raises(InvalidRequest) as raised:
        parse_request(CHAT, {"messages": MESSAGES, **body})
    assert raised.value.param == param


@pytest.mark.parametrize("prompt", [None, "", 5, ["a", "b"], [1, -2], [True]])
def test_completions_reject_bad_prompts(prompt):
    body = {} if prompt is None else {"prompt": prompt}
    if prompt == "":
        assert parse_request(COMPLETIONS, body).prompt == ""
        return
    with pytest.raises(InvalidRequest):
        parse_request(COMPLETIONS, body)
