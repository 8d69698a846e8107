"""ppgan.apps.full_frame: a corpus clip drifting inside a scene, and scoring a lip-synced scene
video against the oracle at the known face boxes."""

from pathlib import Path

import cv2
import numpy as np

from ppgan.apps.full_frame import (drifting_boxes, face_detected, score_scene_result,
                                   write_scene_inputs)
from ppgan.corpus_tools import oracle
from ppgan.corpus_tools.synthetic_faces import compose_raw_frame
from ppgan.utils.video import probe_video, read_video, write_video


def test_boxes_drift_smoothly_inside_the_frame():
    boxes = drifting_boxes(np.random.default_rng(0), 200, (120, 130), (10, 106, 20, 116), 8)
    assert boxes.shape == (200, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] <= 120).all()
    assert (boxes[:, 2] >= 0).all() and (boxes[:, 3] <= 130).all()
    assert ((boxes[:, 1] - boxes[:, 0]) == 96).all() and ((boxes[:, 3] - boxes[:, 2]) == 96).all()
    assert np.abs(np.diff(boxes, axis=0)).max() <= 2  # slow motion
    assert np.ptp(boxes[:, 0]) >= 4 or np.ptp(boxes[:, 2]) >= 4  # but it moves


def test_scene_inputs_and_a_perfect_result_score_as_the_oracle(synthetic_corpus, tmp_path):
    corpus = Path(synthetic_corpus)
    face_key, audio_key = (corpus / "test.txt").read_text().split()[:2]
    inputs = write_scene_inputs(str(corpus), face_key, str(tmp_path), seed=3, frame_size=(160, 192))
    info = probe_video(inputs["video"])
    plan = oracle.load_clip_plan(str(corpus / face_key))
    assert (info.width, info.height, info.num_frames, info.has_audio) == (192, 160, plan.num_frames, True)
    assert cv2.imread(inputs["still"]).shape == (160, 192, 3)
    video = read_video(inputs["video"])
    top, bottom, left, right = inputs["boxes"][0]
    face = video[0, top:bottom, left:right].astype(int)
    assert np.abs(face - oracle.render_oracle(plan, plan)[0]).mean() < 6  # the face is at its box

    # A "result" that is the oracle drawn into the scene at the source frames' boxes.
    audio = oracle.load_clip_plan(str(corpus / audio_key))
    truth = oracle.render_oracle(plan, audio)
    sources = oracle.dub_source_indices(len(truth), plan.num_frames)
    perfect = [compose_raw_frame(video[s], face, inputs["boxes"][s]) for s, face in zip(sources, truth)]
    write_video(str(tmp_path / "perfect.mp4"), perfect, 25)
    score = score_scene_result(str(tmp_path / "perfect.mp4"), str(corpus), face_key, audio_key,
                               inputs["boxes"])
    assert score["frames"] == audio.num_frames and score["lower_psnr"] > 28
    assert score["opening_corr"] > 0.9
    frozen = score_scene_result(inputs["video"], str(corpus), face_key, face_key, inputs["boxes"])
    assert frozen["lower_psnr"] > 28  # the clip is its own oracle
    assert 0.0 <= face_detected(inputs["video"], samples=3) <= 1.0
