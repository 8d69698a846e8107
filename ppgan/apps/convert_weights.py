"""Convert original PyTorch checkpoints (``.pth``) into Paddle state dicts, without PyTorch.

    python tools/convert_weights.py --src wav2lip_gan.pth --arch wav2lip --out wav2lip_gan.pdparams

The registry and the generic steps live in ``ppgan.utils.convert``; each network's module registers
its converter beside the network. This module imports all of those modules, so every ``--arch`` is
known here, and checks each converted dict key by key and shape by shape against the Paddle
network, so a checkpoint given the wrong ``--arch`` fails clearly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import numpy as np

from ..faceutils import s3fd  # noqa: F401  (registers --arch s3fd)
from ..metrics import syncnet_v2  # noqa: F401  (registers --arch syncnet_v2)
from ..models import discriminators, generators  # noqa: F401  (register wav2lip, syncnet, disc)
from ..utils.convert import CONVERTERS, REFERENCE_NETWORKS, torch_state_dict
from ..utils.weights import match_state_dict, mismatch_error, read_weights_file, save_weights_file

if TYPE_CHECKING:
    import paddle


def convert_checkpoint(src: Any, arch: str,
                       network: Optional[paddle.nn.Layer] = None) -> Dict[str, np.ndarray]:
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


def convert_file(src: Union[str, "os.PathLike[str]"], arch: str, out: str) -> int:
    """Convert ``src`` and write the Paddle state dict to ``out`` (atomically).

    Returns:
        The number of entries written.
    """
    state = convert_checkpoint(src, arch)
    save_weights_file(state, out)
    return len(state)
