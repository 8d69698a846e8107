"""The inference spec: what a checkpoint or exported program must say so that inference,
export and evaluation run it exactly as it was trained, without flags.

    {"version": 1, "source": "training" | "reference",
     "generator": {"name": "Wav2Lip", "width_mult": 1.0, "img_size": 96} or None (expert runs),
     "img_size": 96,              # face crop side S of the generator (or of the expert)
     "mel_frame_offset": -1,      # frame offset of the per-frame mel windows to generate with
     "fps": 25.0,                 # the corpus' video frame rate
     "mel": {...},                # the mel-spectrogram parameters (ppgan.utils.audio)
     "expert": {"width_mult": 1.0, "img_size": 96}}   # the lip-sync expert trained / used

Our checkpoints store it under ``inference_spec`` beside the resolved ``config``; an exported
program stores both in its ``.info.json``. A file without one (PaddleGAN's
``wav2lip_hq.pdparams``, a converted original ``.pth``) gets the *reference spec*: the published
network at the width and face size its tensors show, and the reference inference alignment
(offset 0).
A training checkpoint generates with the offset it was trained with, so the CLI, the demo and
``--evaluate-only`` all generate one checkpoint at the same alignment.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional

from ..data.contract import FACE_SIZE, INFERENCE_MEL_FRAME_OFFSET, TRAIN_MEL_FRAME_OFFSET
from ..utils import audio
from ..utils.errors import WeightsError

SPEC_VERSION = 1
SPEC_KEY = "inference_spec"
DEFAULT_FPS = 25.0
# Config blocks that hold the expert: SyncNetModel trains model.syncnet; the generator models
# freeze model.discriminator (Wav2LipModel) or model.discriminator_sync (Wav2LipModelHq).
_EXPERT_BLOCKS = ("syncnet", "discriminator_sync", "discriminator")

# A spec is a JSON-like dict (it is stored in checkpoints and exported programs as such).
Spec = Dict[str, Any]


def mel_parameters() -> Dict[str, float]:
    """The mel-spectrogram parameters this build computes with (``ppgan.utils.audio``)."""
    return {"sample_rate": audio.SAMPLE_RATE, "n_fft": audio.N_FFT, "hop_size": audio.HOP_SIZE,
            "win_size": audio.WIN_SIZE, "num_mels": audio.NUM_MELS, "fmin": audio.FMIN,
            "fmax": audio.FMAX, "preemphasis": audio.PREEMPHASIS,
            "ref_level_db": audio.REF_LEVEL_DB, "min_level_db": audio.MIN_LEVEL_DB,
            "max_abs_value": audio.MAX_ABS_VALUE, "mel_step_size": audio.MEL_STEP_SIZE}


def reference_spec(width_mult: float = 1.0, generator: bool = True, img_size: int = FACE_SIZE) -> Spec:
    """The spec of a file from PaddleGAN or the original repository (see the module doc).

    Args:
        width_mult: the generator's width as its tensors show (1.0 for the published weights).
        generator: False for an expert file (no generator block).
        img_size: the face size its tensors show (96 for the published weights).
    """
    img_size = int(img_size)
    return {"version": SPEC_VERSION, "source": "reference",
            "generator": {"name": "Wav2Lip", "width_mult": float(width_mult), "img_size": img_size}
            if generator else None,
            "img_size": img_size, "mel_frame_offset": INFERENCE_MEL_FRAME_OFFSET,
            "fps": DEFAULT_FPS, "mel": mel_parameters(),
            "expert": {"width_mult": 1.0 if generator else float(width_mult), "img_size": FACE_SIZE}}


def trained_mel_frame_offset(cfg: Mapping[str, Any]) -> int:
    """The ``mel_frame_offset`` of a config's training set (the dataset's default, -1, when unset)."""
    train = (cfg.get("dataset") or {}).get("train") or {}
    return int(train.get("mel_frame_offset", TRAIN_MEL_FRAME_OFFSET))


def _net_block(block: Optional[Mapping[str, Any]], default_name: str) -> Dict[str, Any]:
    """A network config block with its name, width and face size filled in."""
    block = dict(block or {})
    return {**block, "name": block.get("name", default_name),
            "width_mult": float(block.get("width_mult", 1.0)),
            "img_size": int(block.get("img_size", FACE_SIZE))}


def spec_from_config(cfg: Mapping[str, Any]) -> Spec:
    """The spec of a run trained with the resolved config ``cfg`` (a dict or AttrDict).

    The face size is the generator's ``img_size`` (else the training set's); fps and the mel
    offset come from ``dataset.train``.
    """
    cfg = to_dict(cfg)
    model = cfg.get("model") or {}
    train = (cfg.get("dataset") or {}).get("train") or {}
    expert_key = next((key for key in _EXPERT_BLOCKS if isinstance(model.get(key), dict)), None)
    expert = _net_block(model.get(expert_key), "SyncNetColor") if expert_key else None
    generator = _net_block(model["generator"], "Wav2Lip") if isinstance(model.get("generator"), dict) \
        else None
    if generator is not None and "img_size" not in (model["generator"] or {}) and "img_size" in train:
        generator["img_size"] = int(train["img_size"])
    img_size = generator["img_size"] if generator else (expert or {}).get("img_size", FACE_SIZE)
    return {"version": SPEC_VERSION, "source": "training", "generator": generator,
            "img_size": int(img_size),
            "mel_frame_offset": trained_mel_frame_offset(cfg) if generator else INFERENCE_MEL_FRAME_OFFSET,
            "fps": float(train.get("fps", DEFAULT_FPS)), "mel": mel_parameters(),
            "expert": {"width_mult": expert["width_mult"], "img_size": expert["img_size"]}
            if expert else None}


def to_dict(value: Any) -> Any:
    """A plain deep copy of a config / spec (AttrDicts become dicts)."""
    if isinstance(value, dict):
        return {k: to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    return copy.copy(value)


def check_spec(spec: Any, where: str) -> Spec:
    """Return ``spec`` if it is one this build can run; else raise ``WeightsError``.

    A checkpoint computed with other mel parameters would be fed mismatched audio features, so
    that is refused rather than silently run.
    """
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise WeightsError(f"{where} has an inference spec of another version "
                           f"({spec.get('version') if isinstance(spec, dict) else spec!r}); "
                           f"this framework reads version {SPEC_VERSION}")
    missing = [k for k in ("generator", "img_size", "mel_frame_offset", "fps", "mel", "expert")
               if k not in spec]
    if missing:
        raise WeightsError(f"the inference spec of {where} lacks {missing}")
    ours = mel_parameters()
    changed = sorted(k for k in ours if k in spec["mel"] and spec["mel"][k] != ours[k])
    if changed:
        raise WeightsError(f"{where} was trained with other mel parameters ({', '.join(changed)}) "
                           f"than this framework computes; it cannot be run here")
    return spec


def spec_of_weights(obj: Any, where: str, width_mult: Optional[float] = None) -> Spec:
    """The inference spec of a read weights object (``read_weights_file``'s result).

    Args:
        obj: our checkpoint (its ``inference_spec``, else one derived from its ``config``), or
            any other weights dict (the reference spec).
        where: the file, for messages.
        width_mult: the generator width for the reference spec (from the tensor shapes).
    """
    if isinstance(obj, dict) and isinstance(obj.get(SPEC_KEY), dict):
        return check_spec(to_dict(obj[SPEC_KEY]), where)
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
        return spec_from_config(obj["config"])  # checkpoints written before specs existed
    return reference_spec(1.0 if width_mult is None else width_mult)
