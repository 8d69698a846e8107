"""Convert original PyTorch checkpoints (``.pth``) into Paddle state dicts, without PyTorch.

    python tools/convert_weights.py --src wav2lip_gan.pth --arch wav2lip --out wav2lip_gan.pdparams

Generic steps, for every architecture: unwrap ``{"state_dict": ..., "optimizer": ...}``, strip the
``module.`` prefix DataParallel adds, rename batch-norm ``running_mean / running_var`` to Paddle's
``_mean / _variance`` and drop ``num_batches_tracked``. Then the architecture's converter
(``CONVERTERS``) maps the remaining names, and the result is checked key by key and shape by
shape against the Paddle network, so a checkpoint given the wrong ``--arch`` fails clearly.

Networks outside ``ppgan.models`` are listed in ``_LAZY_CONVERTERS`` and registered on first use.
"""

import importlib
import os

import numpy as np

from .errors import WeightsError
from .registry import Registry
from .weights import match_state_dict, mismatch_error, read_weights_file, save_weights_file

CONVERTERS = Registry("weights converter")
# arch -> zero-argument callable building the Paddle network the converted dict must fit
REFERENCE_NETWORKS = {}
_BATCHNORM_RENAMES = {"running_mean": "_mean", "running_var": "_variance"}
_CHECKPOINT_WRAPPERS = ("state_dict", "model", "net")


def register_converter(arch, network_factory=None):
    """Decorator: register ``convert(state) -> state`` for ``arch``.

    Args:
        arch: the ``--arch`` name.
        network_factory: zero-argument callable returning the Paddle network at its published
            size; when given, converted files are checked against its state dict.
    The function receives the PyTorch state dict after the generic steps (prefix stripped,
    batch-norm statistics renamed) as ``{name: ndarray}`` and returns Paddle's ``{name: ndarray}``.
    """
    def decorator(fn):
        CONVERTERS.register(arch)(fn)
        if network_factory is not None:
            REFERENCE_NETWORKS[arch] = network_factory
        return fn
    return decorator


def torch_state_dict(obj, path="the checkpoint"):
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
    state = {}
    for name, value in obj.items():
        name = name[len("module."):] if name.startswith("module.") else name
        prefix, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue  # PyTorch's BN step counter; Paddle's batch norm has no such entry
        if leaf in _BATCHNORM_RENAMES:
            name = f"{prefix}.{_BATCHNORM_RENAMES[leaf]}" if prefix else _BATCHNORM_RENAMES[leaf]
        state[name] = value
    return state


def _wav2lip_networks():
    """Import the network modules lazily: ppgan.utils must not import ppgan.models at load time."""
    from ..models.discriminators.syncnet import SyncNetColor
    from ..models.discriminators.wav2lip_disc_qual import Wav2LipDiscQual
    from ..models.generators.wav2lip import Wav2Lip
    return {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual}


def _same_names(state):
    # The Paddle networks were built with the original module names (conv_block.0, ...), so
    # after the generic batch-norm renames nothing is left to map.
    return dict(state)


for _arch in ("wav2lip", "syncnet", "disc"):
    register_converter(_arch, network_factory=lambda arch=_arch: _wav2lip_networks()[arch]())(
        _same_names)


# Converters of networks defined outside ppgan.models: arch -> (module, converter, network
# factory). Registered here on first use, so those modules never import this one (no cycle).
_LAZY_CONVERTERS = {"s3fd": ("ppgan.faceutils.s3fd", "convert_s3fd", "S3FD"),
                    "syncnet_v2": ("ppgan.metrics.syncnet_v2", "convert_syncnet_v2", "SyncNetV2")}


def _import_registrations():
    """Register the converters that live in other packages."""
    for arch, (module_name, converter, factory) in _LAZY_CONVERTERS.items():
        if arch not in CONVERTERS:
            module = importlib.import_module(module_name)
            register_converter(arch, network_factory=getattr(module, factory))(getattr(module, converter))


def convert_checkpoint(src, arch, network=None):
    """Convert an original PyTorch checkpoint to a Paddle flat state dict.

    Args:
        src: ``.pth`` path (zip or legacy format; torch is not needed) or an already-read object.
        arch: a registered converter name (``wav2lip``, ``syncnet``, ``disc``, ...).
        network: the Paddle network the result must fit. Default: the arch's reference network
            at its published size (e.g. pass ``Wav2Lip(width_mult=0.25)`` for a shrunk one).
    Returns:
        {Paddle parameter name: float ndarray}.
    Raises:
        WeightsError: unreadable or unsafe file, no state dict, or the converted dict does not
            fit the ``arch`` network (the message lists missing / unexpected / mis-shaped keys).
        ConfigError: unknown ``arch``.
    """
    _import_registrations()
    convert = CONVERTERS.get(arch)
    is_path = isinstance(src, (str, os.PathLike))
    where = os.fspath(src) if is_path else "the checkpoint"
    obj = read_weights_file(src) if is_path else src
    state = convert(torch_state_dict(obj, where))
    if network is None and arch in REFERENCE_NETWORKS:
        network = REFERENCE_NETWORKS[arch]()
    if network is not None:
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        report = match_state_dict(expected, state, where, f"--arch {arch} ({type(network).__name__})")
        if not report.ok:
            raise mismatch_error(report, hint="check --arch")
    return state


def convert_file(src, arch, out):
    """Convert ``src`` and write the Paddle state dict to ``out`` (atomically).

    Returns:
        The number of entries written.
    """
    state = convert_checkpoint(src, arch)
    save_weights_file(state, out)
    return len(state)
