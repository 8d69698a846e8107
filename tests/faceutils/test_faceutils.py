"""Face detectors (haar, s3fd, box), the S3FD converter, tracking and the no-face policy."""

import numpy as np
import pytest

from ppgan.faceutils import DETECTORS, build_detector
from ppgan.faceutils.boxes import box_iou
from ppgan.faceutils.detector import FaceDetector
from ppgan.faceutils.s3fd import S3FD, S3FDDetector, decode_outputs, nms
from ppgan.faceutils.track import NOT_SEARCHED, FaceTracker, finalize_track
from ppgan.utils.errors import ConfigError, MediaError, WeightsError

# The astronaut's face in skimage.data.astronaut() (checked by eye), [x1, y1, x2, y2].
ASTRONAUT_FACE = np.array([177, 66, 272, 161], dtype=np.float64)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR


def test_registered_detectors():
    assert {"box", "haar", "s3fd"} <= set(DETECTORS.names())


def test_haar_finds_the_astronaut(astronaut):
    found = build_detector("haar").detect_batch([astronaut])[0]
    assert found.shape == (1, 5)
    assert box_iou(found[0, :4], ASTRONAUT_FACE) > 0.7


def test_haar_finds_nothing_on_a_flat_image():
    flat = np.full((240, 320, 3), 128, np.uint8)
    found = build_detector("haar").detect_batch([flat, flat[:20, :20]])
    assert [f.shape for f in found] == [(0, 5), (0, 5)]


def test_haar_bad_cascade_is_a_config_error():
    with pytest.raises(ConfigError, match="cascade"):
        build_detector("haar", cascade="no_such_cascade.xml")


# ---------------------------------------------------------------------------------------- S3FD

def _torch_s3fd():
    """The original face-alignment S3FD layout in PyTorch (names as in s3fd.pth)."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class L2Norm(nn.Module):
        def __init__(self, channels, scale):
            super().__init__()
            self.weight = nn.Parameter(torch.full((channels,), float(scale)))

        def forward(self, x):
            return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * self.weight.view(1, -1, 1, 1)

    class TorchS3FD(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [(1, [(3, 64), (64, 64)]), (2, [(64, 128), (128, 128)]),
                      (3, [(128, 256), (256, 256), (256, 256)]), (4, [(256, 512), (512, 512), (512, 512)]),
                      (5, [(512, 512), (512, 512), (512, 512)])]
            self.stages = []
            for stage, convs in widths:
                names = []
                for i, (cin, cout) in enumerate(convs, 1):
                    setattr(self, f"conv{stage}_{i}", nn.Conv2d(cin, cout, 3, 1, 1))
                    names.append(f"conv{stage}_{i}")
                self.stages.append(names)
            self.fc6 = nn.Conv2d(512, 1024, 3, 1, 3)
            self.fc7 = nn.Conv2d(1024, 1024, 1)
            self.conv6_1, self.conv6_2 = nn.Conv2d(1024, 256, 1), nn.Conv2d(256, 512, 3, 2, 1)
            self.conv7_1, self.conv7_2 = nn.Conv2d(512, 128, 1), nn.Conv2d(128, 256, 3, 2, 1)
            self.conv3_3_norm, self.conv4_3_norm = L2Norm(256, 10), L2Norm(512, 8)
            self.conv5_3_norm = L2Norm(512, 5)
            self.heads = [("conv3_3_norm", 256, 4), ("conv4_3_norm", 512, 2), ("conv5_3_norm", 512, 2),
                          ("fc7", 1024, 2), ("conv6_2", 512, 2), ("conv7_2", 256, 2)]
            for name, cin, classes in self.heads:
                setattr(self, f"{name}_mbox_conf", nn.Conv2d(cin, classes, 3, 1, 1))
                setattr(self, f"{name}_mbox_loc", nn.Conv2d(cin, 4, 3, 1, 1))

        def forward(self, x):
            feats = {}
            for names in self.stages:
                for name in names:
                    x = F.relu(getattr(self, name)(x))
                feats[names[-1]] = x
                x = F.max_pool2d(x, 2, 2)
            x = F.relu(self.fc7(F.relu(self.fc6(x))))
            feats["fc7"] = x
            x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
            feats["conv6_2"] = x
            feats["conv7_2"] = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
            for name in ("conv3_3", "conv4_3", "conv5_3"):
                feats[f"{name}_norm"] = getattr(self, f"{name}_norm")(feats[name])
            out = []
            for name, _, classes in self.heads:
                cls = getattr(self, f"{name}_mbox_conf")(feats[name])
                if classes == 4:
                    chunk = torch.chunk(cls, 4, 1)
                    cls = torch.cat([torch.max(torch.max(chunk[0], chunk[1]), chunk[2]), chunk[3]], 1)
                out += [cls, getattr(self, f"{name}_mbox_loc")(feats[name])]
            return out

    torch.manual_seed(0)
    return torch, TorchS3FD().eval()


@pytest.fixture(scope="module")
def s3fd_weights(tmp_path_factory):
    """A random S3FD saved by PyTorch as s3fd.pth, converted with the registered converter."""
    torch, reference = _torch_s3fd()
    from ppgan.apps.convert_weights import convert_file

    folder = tmp_path_factory.mktemp("s3fd")
    torch.save(reference.state_dict(), str(folder / "s3fd.pth"))
    convert_file(str(folder / "s3fd.pth"), "s3fd", str(folder / "s3fd.pdparams"))
    return torch, reference, folder / "s3fd.pdparams"


def test_s3fd_converted_weights_match_pytorch(s3fd_weights):
    import paddle
    from ppgan.utils.weights import load_weights

    torch, reference, path = s3fd_weights
    net = S3FD()
    assert load_weights(net, str(path)).ok
    net.eval()
    image = np.random.default_rng(0).uniform(-120, 130, (1, 3, 64, 96)).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in reference(torch.from_numpy(image))]
    with paddle.no_grad():
        got = [t.numpy() for t in net(paddle.to_tensor(image))]
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert [g.shape[1] for g in got] == [2, 4] * 6
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(e).max()))


def test_s3fd_converter_refuses_another_architecture(tmp_path):
    from ppgan.apps.convert_weights import convert_checkpoint
    with pytest.raises(WeightsError, match="s3fd"):
        convert_checkpoint({"state_dict": {"conv1.weight": np.zeros((2, 3, 3, 3), np.float32)}}, "s3fd")


def test_s3fd_detector_needs_weights():
    with pytest.raises(ConfigError, match="weights"):
        build_detector("s3fd")


def test_s3fd_detector_runs_on_frames_of_two_sizes(s3fd_weights):
    _, _, path = s3fd_weights
    detector = build_detector("s3fd", weights=str(path), score_threshold=0.0)
    frames = [np.full((64, 64, 3), 90, np.uint8), np.full((48, 80, 3), 200, np.uint8),
              np.full((64, 64, 3), 30, np.uint8)]
    found = detector.detect_batch(frames)
    assert isinstance(detector, S3FDDetector) and len(found) == 3
    for frame, boxes in zip(frames, found):
        assert boxes.ndim == 2 and boxes.shape[1] == 5
        h, w = frame.shape[:2]
        assert np.all((boxes[:, 0] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 1] >= 0) & (boxes[:, 3] <= h))


def test_s3fd_decoding_places_the_anchor_and_offsets():
    # One 2x3 map at stride 4 (level 0): only cell (row 1, col 2) is a face.
    logits = np.zeros((2, 2, 3), np.float32)
    logits[1, 1, 2] = 6.0
    offsets = np.zeros((4, 2, 3), np.float32)
    offsets[:, 1, 2] = [1.0, 0.0, np.log(2.0) / 0.2, 0.0]  # centre +0.1*16 px in x, width doubled
    boxes = decode_outputs([logits, offsets], candidate_threshold=0.6)
    assert boxes.shape == (1, 5)
    centre_x, centre_y = 2 * 4 + 2 + 0.1 * 16, 1 * 4 + 2
    np.testing.assert_allclose(boxes[0, :4], [centre_x - 16, centre_y - 8, centre_x + 16, centre_y + 8],
                               atol=1e-4)
    assert boxes[0, 4] == pytest.approx(np.exp(6) / (1 + np.exp(6)))


def test_nms_keeps_the_best_of_overlapping_boxes():
    dets = np.array([[0, 0, 10, 10, 0.6], [1, 1, 11, 11, 0.9], [50, 50, 60, 60, 0.7]], np.float64)
    kept = nms(dets, 0.3)
    np.testing.assert_array_equal(kept[:, 4], [0.9, 0.7])


# ------------------------------------------------------------------------------------ tracking

class ScriptedDetector(FaceDetector):
    """Returns, for each call's frames, boxes decided by the frame's (uniform) pixel value, its id,
    in the coordinates of the image it was given; records the image sizes it saw."""

    def __init__(self, boxes_by_id, fail_above=None):
        self.boxes_by_id, self.fail_above, self.sizes = boxes_by_id, fail_above, []

    def detect_batch(self, frames):
        if self.fail_above and len(frames) > self.fail_above:
            raise MemoryError("out of memory")
        self.sizes.append([f.shape[:2] for f in frames])
        return [np.array(self.boxes_by_id.get(int(f[0, 0, 0]), []), np.float64).reshape(-1, 5)
                for f in frames]


def _id_frames(ids, size=(120, 160)):
    return [np.full(size + (3,), i, np.uint8) for i in ids]


def test_tracker_takes_the_largest_then_follows_the_same_face():
    small, large = [20, 20, 40, 40, 1.0], [80, 20, 130, 70, 1.0]
    moved_small, larger_other = [24, 20, 44, 40, 1.0], [70, 10, 150, 90, 1.0]
    detector = ScriptedDetector({1: [small, large], 2: [large, moved_small], 3: [larger_other, moved_small]})
    tracker = FaceTracker(detector, roi_size=0)
    tracker.update(_id_frames([1, 2, 3]))
    np.testing.assert_allclose(tracker.raw_boxes[0], large[:4])
    np.testing.assert_allclose(tracker.raw_boxes[1], large[:4])
    # frame 3: the followed face is gone, so the largest face is taken again
    np.testing.assert_allclose(tracker.raw_boxes[2], larger_other[:4])


def test_tracker_searches_a_window_around_the_previous_face_and_maps_back():
    from skimage import data

    face = np.ascontiguousarray(data.astronaut()[60:170, 170:280, ::-1])
    frames = []
    for shift in range(0, 24, 4):  # the face drifts right across a 360x640 frame
        frame = np.full((360, 640, 3), 60, np.uint8)
        frame[100:210, 200 + shift:310 + shift] = face
        frames.append(frame)
    haar = build_detector("haar")
    calls = []
    original = haar.detect_batch
    haar.detect_batch = lambda images: calls.append([i.shape[:2] for i in images]) or original(images)
    tracker = FaceTracker(haar, batch_size=2, roi_size=160)
    tracker.update(frames[:2])
    tracker.update(frames[2:])
    assert all(b is not None for b in tracker.raw_boxes)
    for shift, box in zip(range(0, 24, 4), tracker.raw_boxes):
        truth = ASTRONAUT_FACE + [200 - 170 + shift, 100 - 60, 200 - 170 + shift, 100 - 60]
        assert box_iou(box, truth) > 0.6
    assert calls[0] == [(270, 480), (270, 480)]  # no face yet: the whole frame, downscaled
    assert all(shape == (160, 160) for call in calls[1:] for shape in call)


def test_tracker_downscales_full_frame_search_and_rescales_boxes():
    detector = ScriptedDetector({7: [[10, 20, 30, 40, 0.9]]})
    tracker = FaceTracker(detector, detect_size=80, roi_size=0)
    tracker.update(_id_frames([7], size=(120, 160)))
    assert detector.sizes == [[(60, 80)]]
    np.testing.assert_allclose(tracker.raw_boxes[0], [20, 40, 60, 80])


def test_tracker_halves_its_batch_on_out_of_memory():
    detector = ScriptedDetector({5: [[0, 0, 50, 50, 1.0]]}, fail_above=3)
    tracker = FaceTracker(detector, batch_size=16, roi_size=0)
    tracker.update(_id_frames([5] * 10))
    assert tracker.batch_size == 2 and len(tracker.raw_boxes) == 10
    assert all(b is not None for b in tracker.raw_boxes)


def test_tracker_searches_every_kth_frame_and_finalize_interpolates_between():
    detector = ScriptedDetector({1: [[0, 0, 40, 40, 1.0]], 2: [[20, 0, 60, 40, 1.0]], 3: []})
    tracker = FaceTracker(detector, roi_size=0, detect_every=2)
    tracker.update(_id_frames([1, 9, 2]))
    tracker.update(_id_frames([9, 3, 9, 1, 9]))
    assert sum(len(call) for call in detector.sizes) == 4  # frames 0, 2, 4, 6
    assert tracker.raw_boxes[1] is NOT_SEARCHED and tracker.raw_boxes[4] is None
    track = finalize_track(tracker.raw_boxes, (120, 160, 3), pads=(0, 0, 0, 0), smooth_window=1,
                           no_face="keep")
    np.testing.assert_array_equal(track.boxes[1], [10, 0, 50, 40])  # between frames 0 and 2
    assert track.boxes[3] is None and track.boxes[5] is None     # next to the faceless frame 4
    np.testing.assert_array_equal(track.boxes[7], [0, 0, 40, 40])   # after the last search
    assert (track.detected, track.kept) == (5, 3)


def _box(x):
    return np.array([x, 10.0, x + 40, 50.0])


def test_finalize_interpolates_short_gaps_and_keeps_long_ones():
    raw = [_box(0), None, _box(20)] + [None] * 5 + [_box(40)]
    track = finalize_track(raw, (100, 200, 3), pads=(0, 0, 0, 0), smooth_window=1, max_gap=3)
    assert (track.detected, track.interpolated, track.kept) == (3, 1, 5)
    np.testing.assert_array_equal(track.boxes[1], [10, 10, 50, 50])
    assert all(b is None for b in track.boxes[3:8])


def test_finalize_keep_policy_and_pads_clipped_to_the_frame():
    raw = [_box(0), None, _box(150)]
    track = finalize_track(raw, (60, 200, 3), pads=(5, 20, 3, 100), smooth_window=1, no_face="keep")
    assert track.boxes[1] is None and (track.interpolated, track.kept) == (0, 1)
    np.testing.assert_array_equal(track.boxes[0], [0, 5, 140, 60])
    np.testing.assert_array_equal(track.boxes[2], [147, 5, 200, 60])


def test_finalize_smooths_over_a_centred_window():
    raw = [_box(x) for x in (0, 0, 30, 0, 0)]
    track = finalize_track(raw, (100, 400, 3), pads=(0, 0, 0, 0), smooth_window=5)
    assert [int(b[0]) for b in track.boxes] == [10, 8, 6, 8, 10]


def test_finalize_error_policy_and_no_face_anywhere():
    with pytest.raises(MediaError, match="frame 1"):
        finalize_track([_box(0), None], (100, 200, 3), no_face="error", source="clip.mp4")
    with pytest.raises(MediaError, match="no face found in any of the 3"):
        finalize_track([None] * 3, (100, 200, 3), source="clip.mp4")
    with pytest.raises(ConfigError):
        finalize_track([_box(0)], (100, 200, 3), no_face="skip")
