"""The converter registry and the generic steps of converting PyTorch checkpoints (``.pth``).

Generic steps, for every architecture: unwrap ``{"state_dict": ..., "optimizer": ...}``, strip the
``module.`` prefix DataParallel adds, rename batch-norm ``running_mean / running_var`` to Paddle's
``_mean / _variance`` and drop ``num_batches_tracked``. Then the architecture's converter
(``CONVERTERS``) maps the remaining names; ``ppgan.apps.convert_weights`` checks the result key by
key and shape by shape against the Paddle network.

Each network's module registers its converter (``register_converter``) where the network is
defined, so this module imports nothing above ``ppgan.utils``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

import numpy as np

from .errors import WeightsError
from .registry import Registry

CONVERTERS = Registry("weights converter")
# arch -> zero-argument callable building the Paddle network the converted dict must fit
REFERENCE_NETWORKS: Dict[str, Callable[[], Any]] = {}
# A converter: {PyTorch name: array} after the generic steps -> {Paddle name: array}.
_Converter = TypeVar("_Converter", bound=Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]])
_BATCHNORM_RENAMES = {"running_mean": "_mean", "running_var": "_variance"}
_CHECKPOINT_WRAPPERS = ("state_dict", "model", "net")


def register_converter(arch: str, network_factory: Optional[Callable[[], Any]] = None
                       ) -> Callable[[_Converter], _Converter]:
    """Decorator: register ``convert(state) -> state`` for ``arch``.

    Args:
        arch: the ``--arch`` name.
        network_factory: zero-argument callable returning the Paddle network at its published
            size; when given, converted files are checked against its state dict.
    The function receives the PyTorch state dict after the generic steps (prefix stripped,
    batch-norm statistics renamed) as ``{name: ndarray}`` and returns Paddle's ``{name: ndarray}``.
    """
    def decorator(fn: _Converter) -> _Converter:
        CONVERTERS.register(arch)(fn)
        if network_factory is not None:
            REFERENCE_NETWORKS[arch] = network_factory
        return fn
    return decorator


def torch_state_dict(obj: Any, path: str = "the checkpoint") -> Dict[str, np.ndarray]:
    """The model state dict of a read PyTorch checkpoint, with generic renames applied.

    Args:
        obj: what ``read_weights_file`` returned for a ``.pth`` file: ``{"state_dict": ...}``
            (the original training scripts) or a bare state dict.
    Returns:
        {name: ndarray} with ``module.`` stripped, ``running_mean/var`` renamed to
        ``_mean/_variance`` and ``num_batches_tracked`` dropped.
    """
    for key in _CHECKPOINT_WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or \
            not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise WeightsError(f"{path} holds no model state dict (a dict of tensors, possibly under "
                           f"'state_dict'); expected an original PyTorch checkpoint")
    state: Dict[str, np.ndarray] = {}
    for name, value in obj.items():
        name = name[len("module."):] if name.startswith("module.") else name
        prefix, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue  # PyTorch's BN step counter; Paddle's batch norm has no such entry
        if leaf in _BATCHNORM_RENAMES:
            name = f"{prefix}.{_BATCHNORM_RENAMES[leaf]}" if prefix else _BATCHNORM_RENAMES[leaf]
        state[name] = value
    return state


def keep_names(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The converter of networks built with the original module names (``conv_block.0``, ...):
    after the generic batch-norm renames nothing is left to map."""
    return dict(state)
