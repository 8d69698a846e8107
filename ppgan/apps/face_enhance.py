"""Face enhancement for inference (``--face_enhancement``): GPEN restores the face region of each
output frame after the generated mouth is pasted in.

The Wav2Lip generator draws 96 px faces, which look soft once scaled up to the face box. GPEN
(``ppgan.models.generators.gpen``) redraws the whole box at its own resolution (512 px for
PaddleGAN's release): the region is cut from the frame, resized to S x S, restored, blended with
the input under a mask that fades out towards the square's edges (PaddleGAN's mask: a rectangle
inset by 26/512 of the side, Gaussian-blurred twice), resized back and written into the frame.

GPEN was trained on RGB faces; PaddleGAN hands it the BGR frames as they are. Here the region
is converted to RGB first and back after.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from ..data.contract import resize_face
from ..utils.errors import ConfigError, WeightsError
from ..utils.weights_home import find_released_weights, missing_weights_message

RELEASED_WEIGHTS = "GPEN-512.pdparams"
# PaddleGAN's blend mask for 512 px: inset of the rectangle, blur kernel and sigma (scaled for
# other sizes).
_MASK_INSET, _MASK_KERNEL, _MASK_SIGMA, _MASK_SIDE = 26, 101, 11, 512


def gpen_config(state: Mapping[str, Any]) -> Dict[str, int]:
    """GPEN's constructor arguments read from a state dict's names and shapes.

    Args:
        state: {name: array-like with .shape} of a GPEN.
    Returns:
        dict(size, style_dim, n_mlp, channel_multiplier).
    Raises:
        WeightsError: the names are not a GPEN's.
    """
    if "final_linear.0.weight" not in state or "ecd0.0.0.weight" not in state:
        raise WeightsError("the face-enhancement weights are not a GPEN state dict (no ecd0 / "
                           "final_linear): give PaddleGAN's GPEN-512.pdparams")
    depth = 0
    while f"ecd{depth}.0.1.weight" in state or f"ecd{depth}.0.0.weight" in state:
        depth += 1
    size = 2 ** (depth + 1)
    n_mlp = 0
    while f"generator.style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    channels = int(state["ecd0.0.0.weight"].shape[0])
    # Above 32 px the first encoder width is 16384 / size * multiplier; below it is fixed at 512.
    multiplier = max(1, channels * size // 16384) if size > 32 else 2
    return dict(size=size, style_dim=int(state["final_linear.0.weight"].shape[1]), n_mlp=n_mlp,
                channel_multiplier=multiplier)


def blend_mask(size: int) -> np.ndarray:
    """(size, size) float32 weight of the restored face: 1 inside, fading to 0 at the edges."""
    scale = size / _MASK_SIDE
    inset = int(round(_MASK_INSET * scale))
    kernel = max(3, int(round(_MASK_KERNEL * scale)) | 1)
    mask: np.ndarray = np.zeros((size, size), np.float32)
    cv2.rectangle(mask, (inset, inset), (size - inset, size - inset), (1, 1, 1), -1, cv2.LINE_AA)
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (kernel, kernel), _MASK_SIGMA * scale)
    return mask


class FaceEnhancer:
    """GPEN restoration of face regions.

    Args:
        weights: GPEN weights file; default: PaddleGAN's ``GPEN-512.pdparams`` where its tools
            cache it (see ``ppgan.utils.weights_home``). Loaded strictly; the network's size is
            read from the weights.
        batch_size: faces per network call (a 512 px GPEN holds ~1 GB of activations per face).
    """

    def __init__(self, weights: Optional[str] = None, batch_size: int = 2) -> None:
        from ..models.generators.gpen import GPEN
        from ..utils.weights import load_weights, read_weights_file, select_state_dict

        path = weights or find_released_weights(RELEASED_WEIGHTS)
        if path is None:
            raise ConfigError(missing_weights_message(RELEASED_WEIGHTS, "--face_enhancement_weights"))
        loaded = read_weights_file(path)
        config = gpen_config(select_state_dict(loaded, None, path))
        self.net = GPEN(**config)
        load_weights(self.net, loaded, strict=True)
        self.net.eval()
        self.size = config["size"]
        self.mask = blend_mask(self.size)[:, :, None]
        self.batch_size = max(1, int(batch_size))

    def restore(self, faces: np.ndarray) -> np.ndarray:
        """Restore S x S faces.

        Args:
            faces: (N, S, S, 3) RGB, float or uint8 in [0, 255].
        Returns:
            (N, S, S, 3) float32 in [0, 255]: GPEN's output inside the mask, the input outside.
        """
        import paddle

        faces = np.asarray(faces, np.float32)
        out = np.empty_like(faces)
        for start in range(0, len(faces), self.batch_size):
            chunk = faces[start:start + self.batch_size]
            inputs = paddle.to_tensor((chunk.transpose(0, 3, 1, 2) / 127.5 - 1.0).astype(np.float32))
            with paddle.no_grad():
                restored = self.net(inputs).numpy().transpose(0, 2, 3, 1)
            restored = np.clip(restored * 127.5 + 127.5, 0.0, 255.0)
            out[start:start + len(chunk)] = chunk + self.mask * (restored - chunk)
        return out

    def enhance_regions(self, frames: Sequence[np.ndarray],
                        boxes: Sequence[Union[Sequence[int], np.ndarray]]) -> None:
        """Restore the box of each frame in place.

        Args:
            frames: list of (H, W, 3) uint8 BGR frames (written in place).
            boxes: list of [x1, y1, x2, y2], one per frame.
        """
        if len(frames) != len(boxes):
            raise ValueError("one box per frame")
        crops = []
        for frame, box in zip(frames, boxes):
            x1, y1, x2, y2 = (int(v) for v in box)
            crops.append(resize_face(frame[y1:y2, x1:x2, ::-1].astype(np.float32), self.size, self.size))
        if not crops:
            return
        restored = self.restore(np.stack(crops))
        for frame, box, face in zip(frames, boxes, restored):
            x1, y1, x2, y2 = (int(v) for v in box)
            back = resize_face(np.ascontiguousarray(face[:, :, ::-1]), x2 - x1, y2 - y1)
            frame[y1:y2, x1:x2] = np.clip(back + 0.5, 0, 255).astype(np.uint8)
