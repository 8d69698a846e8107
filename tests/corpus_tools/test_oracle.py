"""ppgan.corpus_tools.oracle: the plan stored with every synthetic clip and the dubbing ground truth
drawn from it."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppgan.corpus_tools import oracle
from ppgan.corpus_tools.synthetic_faces import mouth_box, synthesize_clip_plan
from ppgan.corpus_tools.synthetic_voice import mouth_shapes, random_speaker
from ppgan.utils.errors import DataError
from ppgan.utils.video import read_video


def _jpgs(folder, count):
    return np.stack([cv2.imread(str(Path(folder) / f"{i}.jpg")) for i in range(count)])


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_self_dubbing_reproduces_the_drawn_frames_exactly():
    rng = np.random.default_rng([3, 1])
    plan, frames, _ = synthesize_clip_plan(rng, random_speaker(rng), 30, img_size=64)
    stored = oracle.plan_from_dict(json.loads(json.dumps(oracle.plan_to_dict(plan))))
    assert np.array_equal(oracle.render_oracle(stored, stored), frames)


def test_self_dubbing_reproduces_a_written_clip(synthetic_corpus):
    """On disk the frames are JPEGs: the oracle equals the frame as drawn, so it matches the stored
    JPEG to JPEG tolerance (and far better than the neighbouring frame does)."""
    root = Path(synthetic_corpus)
    meta = json.loads((root / "corpus.json").read_text())
    for key, count in sorted(meta["num_frames"].items())[:3]:
        plan = oracle.load_clip_plan(str(root / key))
        assert plan.num_frames == count
        rendered = oracle.render_oracle(plan, plan)
        jpgs = _jpgs(root / key, count)
        assert rendered.shape == jpgs.shape
        assert _psnr(rendered, jpgs) > 35
        assert _psnr(rendered, jpgs) > _psnr(np.roll(rendered, 1, axis=0), jpgs) + 8


def test_dubbing_changes_only_the_mouth_region(synthetic_corpus):
    """A's face with B's mouths differs from A's own frames only inside the lips of either shape."""
    root = Path(synthetic_corpus)
    keys = (root / "test.txt").read_text().split() + (root / "val.txt").read_text().split()
    face, audio = (oracle.load_clip_plan(str(root / k)) for k in keys[:2])
    dubbed = oracle.render_oracle(face, audio)
    own = oracle.source_frames(face, len(dubbed))
    assert len(dubbed) == audio.num_frames
    own_shapes, dub_shapes = mouth_shapes(face.track), mouth_shapes(audio.track)
    sources = oracle.dub_source_indices(len(dubbed), face.num_frames)
    size = face.img_size
    changed_frames = 0
    for index, source in enumerate(sources):
        diff = np.any(dubbed[index] != own[index], axis=-1)
        pose = face.poses[source]
        allowed = np.zeros_like(diff)
        for shape in (own_shapes[source], dub_shapes[index]):
            left, top, right, bottom = mouth_box(face.speaker, shape, pose, size)
            allowed[max(0, int(top) - 1):int(np.ceil(bottom)) + 2,
                    max(0, int(left) - 1):int(np.ceil(right)) + 2] = True
        assert not (diff & ~allowed).any(), f"frame {index} changed outside the mouth"
        assert not diff[:size // 2].any()  # never in the upper half
        changed_frames += bool(diff.any())
    assert changed_frames > len(dubbed) // 2  # the mouths really differ


def test_dubbing_follows_the_predictor_frame_order():
    """A longer audio clip plays the face clip forward, backward, forward (ping-pong); a still
    image shows its first frame throughout."""
    rng = np.random.default_rng([3, 2])
    speaker = random_speaker(rng)
    short, short_frames, _ = synthesize_clip_plan(rng, speaker, 6, img_size=48)
    long, _, _ = synthesize_clip_plan(rng, speaker, 14, img_size=48)
    assert list(oracle.dub_source_indices(14, 6)) == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 3]
    floor = oracle.source_frames(short, 14)
    assert np.array_equal(floor[6], short_frames[4]) and np.array_equal(floor[10], short_frames[0])
    still = oracle.render_oracle(short, long, still=True)
    assert len(still) == 14
    # Only the mouth moves in the still's oracle: the top half is frame 0's throughout.
    assert all(np.array_equal(frame[:24], short_frames[0][:24]) for frame in still)


def test_raw_oracle_composes_the_raw_frame(synthetic_corpus_raw):
    root = Path(synthetic_corpus_raw)
    key = sorted(json.loads((root / "corpus.json").read_text())["num_frames"])[0]
    plan = oracle.load_clip_plan(str(root / key))
    boxes = json.loads((root / "raw" / "boxes.json").read_text())
    assert plan.raw["box"] == boxes[key]
    raw = oracle.raw_oracle_frames(plan, oracle.render_oracle(plan, plan))
    video = read_video(str(root / "raw" / f"{key}.mp4"))
    assert raw.shape == video.shape
    # H.264 with 4:2:0 chroma blurs the scene's sharp block edges: compare as the corpus test does.
    error = np.abs(raw.astype(int) - video).mean()
    shifted = np.abs(np.roll(raw, (3, 3), axis=(1, 2)).astype(int) - video).mean()
    assert error < 4 and shifted > error + 3


def test_missing_or_foreign_plans_fail_clearly(tmp_path, synthetic_corpus):
    with pytest.raises(DataError, match="no oracle.json"):
        oracle.load_clip_plan(str(tmp_path))
    (tmp_path / "oracle.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        oracle.load_clip_plan(str(tmp_path))
    data = json.loads((Path(synthetic_corpus) / "speaker00" / "00000" / "oracle.json").read_text())
    with pytest.raises(DataError, match="units"):
        oracle.plan_from_dict(dict(data, units=["x"]))
    with pytest.raises(DataError, match="format"):
        oracle.plan_from_dict(dict(data, format=99))
    with pytest.raises(DataError, match="disagree"):
        oracle.plan_from_dict(dict(data, track=data["track"][:-1]))
    assert oracle.is_synthetic_corpus(str(synthetic_corpus), ["speaker00/00000"])
    assert not oracle.is_synthetic_corpus(str(tmp_path), ["speaker00/00000"])
