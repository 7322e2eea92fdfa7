"""Build a tiny random-weight Llama-style chat model entirely offline.

The model is gibberish by design: it exists so that every vLLM code path
(tokenizer, chat template, scheduling, sampling, structured output) really runs
on a CPU without a model hub. Same seed, same files.
"""

import json
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Words for the synthetic training text: enough variety for a 4096-token BPE,
# including the vocabulary of recruiting prompts and JSON answers.
_WORDS = (
    "the a an of to in and or for with on at by from as is are was were be been this that "
    "candidate candidates role engineer senior junior manager team experience years skills "
    "python java rust sql cloud data model evaluate evaluation score strong weak fit hire "
    "interview resume summary recommend recommendation reason reasons communication leadership "
    "product design system systems backend frontend infrastructure security research analysis "
    "excellent good needs improvement quality category notes tags yes no maybe true false null "
    "json answer question user assistant system you your we our they their it its what why how "
    "when where which who please return only object field value list number string name id "
    "hello world test example sample random token tokens text output input request response"
).split()
_PUNCTUATION = [".", ",", ":", ";", "!", "?", "-", "(", ")", '"', "{", "}", "[", "]"]


def _training_text(rng: random.Random, lines: int = 20_000) -> list[str]:
    text = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 24))]
        for _ in range(rng.randint(0, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(_PUNCTUATION))
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 10_000)))
        sentence = " ".join(words)
        if rng.random() < 0.2:
            sentence = json.dumps({rng.choice(_WORDS): sentence, "score": rng.randint(0, 100)})
        text.append(sentence.capitalize() if rng.random() < 0.5 else sentence)
    return text


def _build_tokenizer(rng: random.Random, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(rng), trainer=trainer)
    return tokenizer


def build_tiny_model(
    path: Path,
    *,
    seed: int = 0,
    vocab_size: int = 4096,
    hidden_size: int = 256,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_position_embeddings: int = 4096,
) -> Path:
    """Write the model to `path` (replacing it) and return the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(seed)
    raw_tokenizer = _build_tokenizer(rng, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw_tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    return save_model_directory(Path(path), model, tokenizer)


def save_model_directory(
    path: Path, model, tokenizer, *, extra_files: dict[str, str] | None = None
) -> Path:
    """Write a local model that vLLM and transformers 4 and 5 read alike, and
    swap it in whole (replace_directory):

    - no sampling fields in generation_config.json: vLLM silently makes them
      every request's default sampling parameters; only the token ids stay;
    - the chat template both in chat_template.jinja (where transformers 5
      writes it) and in tokenizer_config.json (where older readers and some
      vLLM code paths look), with a tokenizer class every version knows.
    """
    model.generation_config.do_sample = False
    for field in ("temperature", "top_p", "top_k"):
        setattr(model.generation_config, field, None)

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        config_file = staging / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config["chat_template"] = tokenizer.chat_template
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_file.write_text(json.dumps(config, indent=2))
        (staging / "chat_template.jinja").write_text(tokenizer.chat_template)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)

    return replace_directory(path, write)


def replace_directory(path: Path, write: Callable[[Path], None]) -> Path:
    """Have `write` fill a fresh directory next to `path`, then swap it in, so
    that a half-written model never exists under the served name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        write(staging)
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path
