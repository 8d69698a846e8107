"""Registries for models, networks and offline evaluations, and their build functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..utils.registry import Registry, build_from_config

if TYPE_CHECKING:
    import paddle

    from .base_model import BaseModel

MODELS = Registry("model")
GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
# Offline evaluations a model names (``BaseModel.evaluator``) for ``--evaluate-only``. They are
# implemented and registered above the models (``ppgan.apps.lipsync_evaluation``), so neither the
# models nor the trainer import them; the trainer calls them through ``ppgan.engine.evaluation``.
EVALUATORS = Registry("evaluator")


def build_model(cfg: Mapping[str, Any], **default_args: Any) -> BaseModel:
    """Build a training model (``cfg.model`` block) from the MODELS registry."""
    return build_from_config(cfg, MODELS, where="model", **default_args)


def build_generator(cfg: Mapping[str, Any], where: str = "model.generator") -> paddle.nn.Layer:
    """Build a generator network block (``{name: Wav2Lip, ...}``) from the GENERATORS registry."""
    return build_from_config(cfg, GENERATORS, where=where)


def build_discriminator(cfg: Mapping[str, Any], where: str = "model.discriminator") -> paddle.nn.Layer:
    """Build a discriminator / expert network block from the DISCRIMINATORS registry."""
    return build_from_config(cfg, DISCRIMINATORS, where=where)

