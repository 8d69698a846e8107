"""Registries for models, networks, losses and offline evaluations, and their build functions."""

from ..utils.registry import Registry, build_from_config

MODELS = Registry("model")
GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
LOSSES = Registry("loss")
# Offline evaluations a model names (``BaseModel.evaluator``) for ``--evaluate-only``. They are
# implemented and registered above the models (``ppgan.apps.lipsync_evaluation``), so neither the
# models nor the trainer import them; the trainer calls them through ``ppgan.engine.evaluation``.
EVALUATORS = Registry("evaluator")


def build_model(cfg, **default_args):
    """Build a training model (``cfg.model`` block) from the MODELS registry."""
    return build_from_config(cfg, MODELS, where="model", **default_args)


def build_generator(cfg, where="model.generator"):
    return build_from_config(cfg, GENERATORS, where=where)


def build_discriminator(cfg, where="model.discriminator"):
    return build_from_config(cfg, DISCRIMINATORS, where=where)


def build_network(cfg, where="network"):
    """Build a network block whose ``name`` may be a generator or a discriminator."""
    registry = GENERATORS if cfg.get("name") in GENERATORS else DISCRIMINATORS
    return build_from_config(cfg, registry, where=where)
