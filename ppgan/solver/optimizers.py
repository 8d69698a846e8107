"""Optimizers built from the ``optimizer`` config block (OPTIMIZERS), PaddleGAN style.

    optimizer:
      optimizer_G: {name: Adam, net_names: [netG], beta1: 0.5}

Each entry becomes one Paddle optimizer over the trainable parameters of the nets it names,
driven by the shared learning-rate scheduler. The entry's key (``optimizer_G``) is how the model
finds it, so a model declares the keys it needs and a missing or extra key fails at start-up.
"""

from __future__ import annotations

from typing import Any, Collection, Dict, List, Mapping, Optional, Union

import paddle

from ..utils.errors import ConfigError
from ..utils.registry import Registry, build_from_config

OPTIMIZERS = Registry("optimizer")
for _name in ("Adam", "AdamW", "SGD", "Momentum", "RMSProp"):
    OPTIMIZERS.register(_name)(getattr(paddle.optimizer, _name))


def trainable_parameters(net: paddle.nn.Layer) -> List[paddle.Tensor]:
    """Parameters the optimizer should update (BatchNorm running statistics excluded)."""
    return [p for p in net.parameters() if not p.stop_gradient]


def build_optimizers(cfg: Optional[Mapping[str, Any]], nets: Mapping[str, paddle.nn.Layer],
                     lr_scheduler: Union[paddle.optimizer.lr.LRScheduler, float],
                     required: Collection[str] = ()) -> Dict[str, paddle.optimizer.Optimizer]:
    """Build every optimizer of the ``optimizer`` config block.

    Args:
        cfg: {key: {name, net_names, ...optimizer kwargs}}.
        nets: {net_name: paddle.nn.Layer} of the nets that may be trained.
        lr_scheduler: the shared Paddle LRScheduler (or a float).
        required: optimizer keys the model's ``train_iter`` uses.
    Returns:
        {key: paddle optimizer}.
    Raises:
        ConfigError: missing/extra keys, unknown or frozen net names, a net in two optimizers,
            a trained net without an optimizer, or a ``learning_rate`` set per optimizer.
    """
    cfg = dict(cfg or {})
    missing = [key for key in required if key not in cfg]
    extra = [key for key in cfg if key not in required]
    if missing or extra:
        raise ConfigError(f"optimizer block must define exactly {list(required)}; "
                          f"missing {missing}, not used by this model {extra}")
    optimizers: Dict[str, paddle.optimizer.Optimizer] = {}
    owner: Dict[str, str] = {}  # net name -> the optimizer key that trains it
    for key, block in cfg.items():
        block = dict(block or {})
        net_names = block.pop("net_names", None)
        if not net_names:
            raise ConfigError(f"optimizer.{key} needs 'net_names: [...]' naming the nets it trains "
                              f"(trainable nets: {sorted(nets)})")
        if "learning_rate" in block:
            raise ConfigError(f"optimizer.{key}.learning_rate is not used: set the rate in the "
                              f"lr_scheduler block (learning_rate) instead")
        params = []
        for net_name in net_names:
            if net_name not in nets:
                raise ConfigError(f"optimizer.{key}.net_names names {net_name!r}, which is not a "
                                  f"trainable net of this model (trainable: {sorted(nets)})")
            if net_name in owner:
                raise ConfigError(f"net {net_name!r} is in both optimizer.{owner[net_name]} and "
                                  f"optimizer.{key}; give each net one optimizer")
            owner[net_name] = key
            params.extend(trainable_parameters(nets[net_name]))
        optimizers[key] = build_from_config(block, OPTIMIZERS, where=f"optimizer.{key}",
                                            learning_rate=lr_scheduler, parameters=params)
    untrained = sorted(set(nets) - set(owner))
    if untrained:
        raise ConfigError(f"trainable nets {untrained} are in no optimizer's net_names")
    return optimizers
