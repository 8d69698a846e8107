"""Registries for models, networks and losses, and their build functions."""

from ..utils.registry import Registry, build_from_config

MODELS = Registry("model")
GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
LOSSES = Registry("loss")


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
