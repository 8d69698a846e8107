"""The LSE embedding models built from weights or a config: our trained expert and SyncNet v2.

``ppgan.metrics`` scores with a built network and knows none of ours; this module builds our
``SyncNetColor`` expert from a checkpoint (width and face size read from the file) and registers
it as the ``expert`` sync scorer beside ``syncnet_v2`` (registered by ``ppgan.metrics.syncnet_v2``).
"""

from typing import Any, Mapping, Optional

import numpy as np
import paddle

from ..data.contract import FACE_SIZE
from ..inference.spec import spec_of_weights
from ..metrics import syncnet_v2  # noqa: F401  (registers the "syncnet_v2" scorer)
from ..metrics.lse import SYNC_SCORERS, ExpertScorer, SyncScorer
from ..utils.errors import WeightsError
from ..utils.registry import build_from_config
from ..utils.weights import load_weights, read_weights_file, select_state_dict
from .discriminators.syncnet import SyncNetColor
from .probe import syncnet_deepest_encoder_key, syncnet_img_size


def infer_expert_width(state_dict: Mapping[str, Any], path: Optional[str] = None) -> float:
    """The ``width_mult`` of a ``SyncNetColor`` state dict.

    Read from the widest layer (the last face conv, 512 x w channels) because narrow layers are
    clamped to a minimum channel count and would give the wrong multiplier.
    """
    key = syncnet_deepest_encoder_key(state_dict)
    if key is None or syncnet_img_size(state_dict) is None:
        raise WeightsError(f"{path or 'the weights'} hold no SyncNetColor expert (no face_encoder "
                           f"of its layout): pass an expert checkpoint")
    return float(np.asarray(state_dict[key]).shape[0]) / 512.0


def load_expert(weights: str, net_name: Optional[str] = None,
                width_mult: Optional[float] = None) -> paddle.nn.Layer:
    """Build a ``SyncNetColor`` of the right width and face size and load ``weights`` into it
    (strictly).

    Args:
        weights: path to our expert checkpoint, a PaddleGAN ``syncnet.pdparams`` or a converted
            PyTorch expert.
        width_mult: None takes it from the checkpoint's inference spec (its ``expert``) or,
            for a plain weights file, from the layer shapes. The face size comes from there too.
    Returns:
        the network, in eval mode.
    """
    obj = read_weights_file(weights)
    state = select_state_dict(obj, net_name=net_name, path=weights)
    # Our checkpoints say which expert they trained (width, face size); other files show both
    # in their tensors.
    spec = spec_of_weights(obj, weights)
    trained = spec["expert"] if spec["source"] == "training" and spec.get("expert") else {}
    if width_mult is None:
        width_mult = trained.get("width_mult") or infer_expert_width(state, weights)
    img_size = trained.get("img_size") or syncnet_img_size(state) or FACE_SIZE
    net = SyncNetColor(width_mult=float(width_mult), img_size=int(img_size))
    load_weights(net, state, strict=True)
    net.eval()
    return net


@SYNC_SCORERS.register("expert")
def build_expert_scorer(weights: Optional[str] = None, net: Optional[paddle.nn.Layer] = None,
                        net_name: Optional[str] = None, width_mult: Optional[float] = None,
                        batch_size: int = 64, engine: str = "auto") -> ExpertScorer:
    """``{name: expert, weights: CKPT}``: our trained expert (cosine distance)."""
    if net is None:
        if not weights:
            raise WeightsError("the expert sync scorer needs weights: pass the expert checkpoint "
                               "(e.g. --weights output/syncnet/best.pdparams)")
        net = load_expert(weights, net_name=net_name, width_mult=width_mult)
    return ExpertScorer(net, batch_size=batch_size, engine=engine)


def build_sync_scorer(cfg: Mapping[str, Any], where: str = "sync_scorer") -> SyncScorer:
    """Build an LSE embedding model from ``{name: expert|syncnet_v2, weights: PATH, ...}``."""
    return build_from_config(cfg, SYNC_SCORERS, where=where)
