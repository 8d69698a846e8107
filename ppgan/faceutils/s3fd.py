"""S3FD face detector (Zhang et al., "S3FD: Single Shot Scale-invariant Face Detector", ICCV 2017)
in Paddle, laid out so the original face-alignment ``s3fd.pth`` converts by renaming nothing.

The network is VGG-16 with extra layers and six prediction heads at strides 4 ... 128 (one square
anchor of 4x the stride per cell). Its input is an RGB image minus the per-channel mean
(104, 117, 123) - the original pipeline flips BGR to RGB and then subtracts these values, and the
released weights expect exactly that. Post-processing: softmax, candidates above 0.05, box decoding
with variances (0.1, 0.2), NMS at IoU 0.3, faces above 0.5.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..utils.convert import keep_names, register_converter
from ..utils.errors import ConfigError
from .builder import DETECTORS
from .detector import FaceDetector

INPUT_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
ANCHOR_VARIANCES = (0.1, 0.2)
# (name, in, out) of the VGG trunk; "pool" closes a stage. Names match the original state dict.
_VGG: List[Union[str, Tuple[str, int, int]]] = [("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
        ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
        ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "pool",
        ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), "pool",
        ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), "pool"]
# Prediction heads: (source feature, channels, classes). The stride-4 head predicts three
# background scores and one face score; their max is the background ("max-out" labelling).
_HEADS = [("conv3_3_norm", 256, 4), ("conv4_3_norm", 512, 2), ("conv5_3_norm", 512, 2),
          ("fc7", 1024, 2), ("conv6_2", 512, 2), ("conv7_2", 256, 2)]


class L2Norm(nn.Layer):
    """Per-position L2 normalisation over channels times a learned per-channel scale."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = self.create_parameter(
            [channels], default_initializer=nn.initializer.Constant(float(scale)))
        self.eps = 1e-10

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        norm = paddle.sqrt(paddle.sum(x * x, axis=1, keepdim=True)) + self.eps
        return x / norm * self.weight.reshape([1, -1, 1, 1])


class S3FD(nn.Layer):
    """The S3FD network.

    Forward: (B, 3, H, W) mean-subtracted RGB float32 -> list of 12 tensors
    [cls_0, reg_0, ..., cls_5, reg_5]; cls_i is (B, 2, H_i, W_i) logits (background, face) and
    reg_i is (B, 4, H_i, W_i) box offsets, for strides 4, 8, 16, 32, 64, 128.
    """

    def __init__(self) -> None:
        super().__init__()
        for item in _VGG:
            if isinstance(item, tuple):  # not "pool"
                name, cin, cout = item
                setattr(self, name, nn.Conv2D(cin, cout, 3, 1, 1))
        # fc6 pads by 3 with a 3x3 kernel (so its map is 4 cells larger); kept for the weights.
        self.fc6 = nn.Conv2D(512, 1024, 3, 1, padding=3)
        self.fc7 = nn.Conv2D(1024, 1024, 1, 1, 0)
        self.conv6_1 = nn.Conv2D(1024, 256, 1, 1, 0)
        self.conv6_2 = nn.Conv2D(256, 512, 3, 2, 1)
        self.conv7_1 = nn.Conv2D(512, 128, 1, 1, 0)
        self.conv7_2 = nn.Conv2D(128, 256, 3, 2, 1)
        self.conv3_3_norm = L2Norm(256, 10.0)
        self.conv4_3_norm = L2Norm(512, 8.0)
        self.conv5_3_norm = L2Norm(512, 5.0)
        for source, channels, classes in _HEADS:
            setattr(self, f"{source}_mbox_conf", nn.Conv2D(channels, classes, 3, 1, 1))
            setattr(self, f"{source}_mbox_loc", nn.Conv2D(channels, 4, 3, 1, 1))

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        features = {}
        for item in _VGG:
            if item == "pool":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(getattr(self, item[0])(x))
                if item[0] in ("conv3_3", "conv4_3", "conv5_3"):
                    features[item[0]] = x
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        features["fc7"] = x
        x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
        features["conv6_2"] = x
        features["conv7_2"] = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
        for name in ("conv3_3", "conv4_3", "conv5_3"):
            features[f"{name}_norm"] = getattr(self, f"{name}_norm")(features[name])
        outputs = []
        for source, _, classes in _HEADS:
            cls = getattr(self, f"{source}_mbox_conf")(features[source])
            if classes == 4:
                background = paddle.max(cls[:, :3], axis=1, keepdim=True)
                cls = paddle.concat([background, cls[:, 3:]], axis=1)
            outputs += [cls, getattr(self, f"{source}_mbox_loc")(features[source])]
        return outputs


def nms(detections: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        detections: (K, 5) array [x1, y1, x2, y2, score].
    Returns:
        (K', 5) array of the kept boxes, highest score first.
    """
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
    order = np.argsort(-detections[:, 4])
    x1, y1, x2, y2 = (detections[:, i] for i in range(4))
    # The original code measures sizes in inclusive pixels (+1), which shifts IoU slightly.
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= iou_threshold]
    return detections[keep]


def decode_outputs(outputs: Sequence[np.ndarray], candidate_threshold: float = 0.05) -> np.ndarray:
    """Turn one image's head outputs into scored boxes (before NMS).

    Args:
        outputs: list of 12 numpy arrays [cls_0, reg_0, ...]; cls_i (2, H_i, W_i) logits,
            reg_i (4, H_i, W_i) offsets.
    Returns:
        (K, 5) array [x1, y1, x2, y2, face probability] in input-image pixels.
    """
    found = []
    for level in range(len(outputs) // 2):
        logits, offsets = outputs[2 * level], outputs[2 * level + 1]
        shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
        face_prob = shifted[1] / shifted.sum(axis=0)
        rows, cols = np.nonzero(face_prob > candidate_threshold)
        if rows.size == 0:
            continue
        stride = 2 ** (level + 2)
        centres = np.stack([cols * stride + stride / 2, rows * stride + stride / 2], axis=1)
        size = 4.0 * stride  # one square anchor per cell
        loc = offsets[:, rows, cols].T.astype(np.float64)
        centre = centres + loc[:, :2] * ANCHOR_VARIANCES[0] * size
        wh = size * np.exp(loc[:, 2:] * ANCHOR_VARIANCES[1])
        found.append(np.column_stack([centre - wh / 2, centre + wh / 2, face_prob[rows, cols]]))
    return np.concatenate(found) if found else np.zeros((0, 5))


@DETECTORS.register("s3fd")
class S3FDDetector(FaceDetector):
    """S3FD behind the detector interface.

    Args:
        weights: a Paddle weights file for ``S3FD`` (convert the original ``s3fd.pth`` with
            ``tools/convert_weights.py --arch s3fd``). Required: nothing is downloaded.
        score_threshold: keep faces with probability above this. Default: 0.5.
        candidate_threshold: cells considered before NMS. Default: 0.05.
        nms_iou: overlap above which the weaker box is dropped. Default: 0.3.
    """

    def __init__(self, weights: Optional[str] = None, score_threshold: float = 0.5,
                 candidate_threshold: float = 0.05, nms_iou: float = 0.3) -> None:
        if not weights:
            raise ConfigError("the s3fd face detector needs a weights file (convert s3fd.pth with "
                              "tools/convert_weights.py --arch s3fd), or use the 'haar' detector")
        from ..utils.weights import load_weights

        self.net = S3FD()
        load_weights(self.net, weights)
        self.net.eval()
        self.score_threshold = float(score_threshold)
        self.candidate_threshold = float(candidate_threshold)
        self.nms_iou = float(nms_iou)

    def detect_batch(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Detect faces; frames of equal size run as one network batch.

        Args:
            frames: list of (H, W, 3) BGR uint8 arrays.
        Returns:
            list of (K, 5) float arrays [x1, y1, x2, y2, probability].
        """
        results: List[np.ndarray] = [np.zeros((0, 5))] * len(frames)  # every slot is set below
        by_shape: Dict[Tuple[int, ...], List[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(frame.shape, []).append(i)
        for indices in by_shape.values():
            batch = np.stack([frames[i][:, :, ::-1] for i in indices]).astype(np.float32) - INPUT_MEAN
            with paddle.no_grad():
                outputs = self.net(paddle.to_tensor(batch.transpose(0, 3, 1, 2)))
            outputs = [o.numpy() for o in outputs]
            for row, i in enumerate(indices):
                boxes = decode_outputs([o[row] for o in outputs], self.candidate_threshold)
                boxes = nms(boxes, self.nms_iou)
                h, w = frames[i].shape[:2]
                boxes = boxes[boxes[:, 4] > self.score_threshold]
                boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
                boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
                results[i] = boxes
        return results


# The original face-alignment ``s3fd.pth``: every layer is a plain convolution or an L2Norm scale
# whose names and layouts are the same in both frameworks, so the generic steps suffice.
register_converter("s3fd", network_factory=S3FD)(keep_names)
