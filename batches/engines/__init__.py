"""Engines behind one small interface (see base.Engine), one loaded per process."""

import logging

from django.conf import settings

from batches.engines.base import Engine

logger = logging.getLogger(__name__)

_loaded: dict[str, Engine] = {}


def served_models() -> list[str]:
    return list(settings.SERVED_MODELS)


def get_engine(model: str) -> Engine:
    """The engine for `model`, loaded on first use and kept for the process.

    One model at a time: loading another releases the previous one, since two
    models rarely fit on one accelerator.
    """
    engine = _loaded.get(model)
    if engine is None:
        for name in list(_loaded):
            _loaded.pop(name).close()
        engine = _loaded[model] = _build(model)
    return engine


def unload(model: str) -> None:
    """Drop the engine for `model` (it died): the next get_engine loads a new one."""
    engine = _loaded.pop(model, None)
    if engine is not None:
        try:
            engine.close()
        except Exception:  # a dead engine may fail to close; it is dropped all the same
            logger.warning("Closing the dead %s engine failed", model, exc_info=True)


def loaded_model() -> str | None:
    """The model this process has loaded, if any."""
    return next(iter(_loaded), None)


def _build(model: str) -> Engine:
    if settings.ENGINE == "test":
        from batches.engines.testing import DeterministicTestEngine

        return DeterministicTestEngine(model)
    if settings.ENGINE == "vllm":
        from batches.engines.vllm import VLLMEngine

        return VLLMEngine(model, settings.SERVED_MODELS[model], settings.VLLM_ENGINE_ARGS)
    if settings.ENGINE == "openai":
        from batches.engines.openai import OpenAIEngine

        return OpenAIEngine(
            model,
            urls=settings.OPENAI_ENGINE_URLS,
            api_key=settings.OPENAI_ENGINE_API_KEY,
            concurrency=settings.OPENAI_ENGINE_CONCURRENCY,
            timeout=settings.OPENAI_ENGINE_TIMEOUT,
        )
    raise ValueError(f"Unknown ENGINE {settings.ENGINE!r}; expected vllm, openai or test.")
