"""What a state dict says about the network that made it: the face size (and the generator's width).

Flat weights files (PaddleGAN's ``.pdparams``, converted ``.pth`` files, a bare ``netG`` dict)
carry no config, so loaders read these from tensor shapes before building the network to load
them into. Every extra face-size stage adds a fixed number of units right after the stem, and
its resampling kernel names its factor (``modules.conv.resample_factor``); the published 96 px
networks have none.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional

from ..data.contract import FACE_SIZE
from ..modules.conv import resample_factor

# Published unit counts and the units each extra stage adds, per network.
_WAV2LIP_BLOCKS = 7        # face_encoder_blocks.<i>: one block per stage
_SYNCNET_UNITS = 17        # face_encoder.<i>: a resampling unit and a residual unit per stage
_SYNCNET_UNITS_PER_STAGE = 2
_WEIGHT = "conv_block.0.weight"

# ``{parameter name: numpy array or paddle tensor}``: only names and shapes are read.
StateDict = Mapping[str, Any]


def _indices(state: StateDict, prefix: str) -> List[int]:
    """Sorted distinct integers i of keys ``<prefix>.<i>.…``."""
    found = set()
    for key in state:
        if key.startswith(prefix + "."):
            head = key[len(prefix) + 1:].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _size_from_kernels(kernels: Iterable[int]) -> int:
    size = FACE_SIZE
    for kernel in kernels:
        size *= resample_factor(int(kernel))
    return size


def _kernel(state: StateDict, key: str) -> int:
    return int(state[key].shape[-1])


def wav2lip_img_size(state: StateDict) -> Optional[int]:
    """Face size S of a ``Wav2Lip`` state dict ``{name: array}``; None when it is not one."""
    blocks = _indices(state, "face_encoder_blocks")
    extra = len(blocks) - _WAV2LIP_BLOCKS
    keys = [f"face_encoder_blocks.{i}.0.{_WEIGHT}" for i in range(1, 1 + extra)]
    if extra < 0 or blocks != list(range(len(blocks))) or not all(k in state for k in keys):
        return None
    return _size_from_kernels(_kernel(state, k) for k in keys)


def wav2lip_deepest_encoder_key(state: StateDict) -> Optional[str]:
    """Key of the deepest face-encoder conv weight (512 x width channels at every face size)."""
    blocks = _indices(state, "face_encoder_blocks")
    return f"face_encoder_blocks.{blocks[-1]}.0.{_WEIGHT}" if blocks else None


def syncnet_img_size(state: StateDict) -> Optional[int]:
    """Face size S of a ``SyncNetColor`` state dict; None when it is not one."""
    units = _indices(state, "face_encoder")
    extra, odd = divmod(len(units) - _SYNCNET_UNITS, _SYNCNET_UNITS_PER_STAGE)
    keys = [f"face_encoder.{1 + _SYNCNET_UNITS_PER_STAGE * i}.{_WEIGHT}" for i in range(max(extra, 0))]
    if extra < 0 or odd or units != list(range(len(units))) or not all(k in state for k in keys):
        return None
    return _size_from_kernels(_kernel(state, k) for k in keys)


def syncnet_deepest_encoder_key(state: StateDict) -> Optional[str]:
    """Key of the expert's last face conv weight (512 x width channels at every face size)."""
    units = _indices(state, "face_encoder")
    return f"face_encoder.{units[-1]}.{_WEIGHT}" if units else None
