"""LSE-D / LSE-C protocol, sync-pair accuracy and the expert scorer.

The protocol tests on synthetic clips use ``MouthEnergyScorer``: a deterministic, documented
embedding built from what the synthetic corpus guarantees (the drawn mouth opening follows the
voice's loudness at the same frame). Video side: per frame, the fraction of lower-face pixels
showing the inside of the drawn mouth (cavity, teeth, tongue colours), standardised over the
clip; audio side: per frame, the RMS of its 640 samples, standardised over the clip; a window's
embedding is the 5 values of its frames, minus their mean. Everything after the embedding is the real protocol code
(``clip_features`` -> ``offset_distances`` -> ``LSEResult``).
"""

import numpy as np
import pytest

from ppgan.metrics.lse import (
    SYNC_T, VSHIFT, ExpertScorer, LSEResult, SyncScorer, aggregate_lse, cosine_distance,
    euclidean_distance, lse_from_distances, lse_from_features, offset_distances, score_clip,
    sync_pair_accuracy)
from ppgan.models.lse_scorers import infer_expert_width
from ppgan.utils.errors import DataError

SAMPLES_PER_FRAME = 640
# What the synthetic corpus draws inside an open mouth (BGR): cavity, upper teeth, tongue.
MOUTH_INSIDE_BGR = ((35, 20, 60), (235, 240, 245), (90, 80, 185))


def _standardise(values):
    values = np.asarray(values, np.float64)
    return (values - values.mean()) / (values.std() + 1e-8)


def _centred_windows(values, num_windows):
    """(num_windows, 5) windows of a per-frame signal, each minus its own mean (so the cosine of
    two windows is their correlation: unrelated signals score about 0, i.e. distance 1)."""
    windows = np.stack([values[i:i + SYNC_T] for i in range(num_windows)])
    return windows - windows.mean(axis=1, keepdims=True)


class MouthEnergyScorer(SyncScorer):
    """Sync-aware embedding without a network (see the module docstring). Cosine distance."""

    name = "mouth_energy"
    face_size = 96
    distance = staticmethod(cosine_distance)

    def num_windows(self, num_frames, num_samples, fps):
        return max(0, min(num_frames, num_samples // SAMPLES_PER_FRAME) - SYNC_T + 1)

    def video_features(self, faces, num_windows):
        lower = np.asarray(faces)[:, self.face_size // 2:].astype(np.int32)
        inside = np.zeros(lower.shape[:3], bool)
        for colour in MOUTH_INSIDE_BGR:
            inside |= np.abs(lower - colour).max(axis=3) < 20
        openness = _standardise(inside.mean(axis=(1, 2)))
        return _centred_windows(openness, num_windows)

    def audio_features(self, wav, fps, num_windows):
        frames = len(wav) // SAMPLES_PER_FRAME
        rms = np.sqrt((wav[:frames * SAMPLES_PER_FRAME].reshape(frames, -1) ** 2).mean(axis=1))
        loudness = _standardise(rms)
        return _centred_windows(loudness, num_windows)


@pytest.fixture(scope="module")
def talking_clips():
    """Three 4-second synthetic clips of different speakers: list of (frames, wav)."""
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker

    clips = []
    for seed in range(3):
        speaker = random_speaker(np.random.default_rng([7, seed]))
        frames, wav, _ = synthesize_clip(np.random.default_rng([11, seed]), speaker, 100)
        clips.append((frames, wav))
    return clips


def _delay(wav, frames):
    """Audio delayed by ``frames`` video frames (negative: advanced), same length, silence-filled."""
    shift = frames * SAMPLES_PER_FRAME
    out = np.zeros_like(wav)
    if shift >= 0:
        out[shift:] = wav[:len(wav) - shift]
    else:
        out[:shift] = wav[-shift:]
    return out


# ------------------------------------------------------------------------------- protocol unit

def test_offset_distances_match_the_reference_loop():
    rng = np.random.default_rng(0)
    video, audio = rng.normal(size=(12, 6)), rng.normal(size=(12, 6))
    table = offset_distances(video, audio, euclidean_distance, vshift=4)
    assert table.shape == (12, 9)
    for i in range(12):
        for k in range(9):
            j = i + k - 4  # audio window compared at column k
            other = audio[j] if 0 <= j < 12 else np.zeros(6)
            assert table[i, k] == pytest.approx(np.linalg.norm(video[i] - other + 1e-6))


def test_lse_values_and_offset_sign():
    # Windows match audio shifted by +2 best: the minimum sits at offset +2.
    dists = np.tile(np.array([5.0, 4.0, 3.0, 2.0, 1.0, 3.0, 6.0]), (4, 1))
    result = lse_from_distances(dists, vshift=3)
    assert list(result.offsets) == [-3, -2, -1, 0, 1, 2, 3]
    assert result.av_offset == 1
    assert result.lse_d == pytest.approx(1.0)
    assert result.lse_c == pytest.approx(3.0 - 1.0)
    assert result.num_windows == 4
    as_dict = result.to_dict()
    assert as_dict["av_offset"] == 1 and len(as_dict["mdist"]) == 7


def test_distances_handle_the_zero_padding():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    zeros = np.zeros((2, 2))
    np.testing.assert_allclose(cosine_distance(a, zeros), [1.0, 1.0])
    np.testing.assert_allclose(cosine_distance(a, a), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(cosine_distance(a, -a), [2.0, 2.0])
    np.testing.assert_allclose(euclidean_distance(a, zeros), np.linalg.norm(a + 1e-6, axis=1))


def test_delayed_features_move_the_offset_exactly():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(60, 8))
    for delay in (-4, 0, 3):
        audio = np.zeros_like(feats)
        # the audio window for video window i appears at audio position i + delay
        for i in range(60):
            if 0 <= i + delay < 60:
                audio[i + delay] = feats[i]
        assert lse_from_features(feats, audio, cosine_distance).av_offset == delay


def test_mismatched_features_are_rejected():
    with pytest.raises(ValueError):
        offset_distances(np.zeros((5, 3)), np.zeros((4, 3)), cosine_distance)


def test_aggregate_is_the_mean_over_videos():
    a = LSEResult(np.arange(-1, 2), np.array([3.0, 1.0, 2.0]), 10)
    b = LSEResult(np.arange(-1, 2), np.array([2.0, 2.0, 0.0]), 20)
    agg = aggregate_lse([a, b])
    assert agg["lse_d"] == pytest.approx((1.0 + 0.0) / 2)
    assert agg["lse_c"] == pytest.approx(((2.0 - 1.0) + (2.0 - 0.0)) / 2)
    assert agg["mdist"] == pytest.approx([2.5, 1.5, 1.0])
    assert agg["av_offsets"] == [0, 1] and agg["num_videos"] == 2
    assert aggregate_lse([]) is None


# --------------------------------------------------------------------- synthetic talking clips

def test_in_sync_clip_has_offset_zero(talking_clips):
    scorer = MouthEnergyScorer()
    for frames, wav in talking_clips:
        result = score_clip(scorer, frames, wav, fps=25)
        assert result.av_offset == 0
        assert len(result.mdist) == 2 * VSHIFT + 1
        assert result.num_windows == len(frames) - SYNC_T + 1


@pytest.mark.parametrize("delay", [3, -3])
def test_delayed_audio_gives_offset_k_and_a_worse_lse_d(talking_clips, delay):
    scorer = MouthEnergyScorer()
    for frames, wav in talking_clips:
        in_sync = score_clip(scorer, frames, wav, fps=25)
        shifted = score_clip(scorer, frames, _delay(wav, delay), fps=25)
        assert abs(shifted.av_offset - delay) <= 1
        assert shifted.lse_d > in_sync.lse_d


def test_shuffled_audio_gives_lower_confidence(talking_clips):
    scorer = MouthEnergyScorer()
    for index, (frames, wav) in enumerate(talking_clips):
        other_wav = talking_clips[(index + 1) % len(talking_clips)][1]
        in_sync = score_clip(scorer, frames, wav, fps=25)
        shuffled = score_clip(scorer, frames, other_wav, fps=25)
        assert shuffled.lse_c < in_sync.lse_c
        assert shuffled.lse_d > in_sync.lse_d


def test_too_short_clip_fails_clearly():
    frames = np.zeros((3, 96, 96, 3), np.uint8)
    with pytest.raises(DataError, match="too short"):
        score_clip(MouthEnergyScorer(), frames, np.zeros(3 * 640, np.float32), fps=25)


# ------------------------------------------------------------------------- sync-pair accuracy

def test_sync_pair_accuracy_counts_both_kinds():
    eye = np.eye(20)
    perfect = sync_pair_accuracy(eye, eye, min_offset=3)
    assert perfect["accuracy"] == 1.0 and perfect["pairs"] == 40
    # An expert that says "in sync" to everything is right on half of the balanced pairs.
    ones = np.ones((20, 4))
    naive = sync_pair_accuracy(ones, ones, min_offset=3)
    assert naive["in_sync_accuracy"] == 1.0 and naive["off_sync_accuracy"] == 0.0
    assert naive["accuracy"] == 0.5
    with pytest.raises(DataError):
        sync_pair_accuracy(np.eye(3), np.eye(3), min_offset=5)


# ------------------------------------------------------------------------------ expert scorer

@pytest.fixture(scope="module")
def tiny_expert():
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor

    paddle.seed(0)
    net = SyncNetColor(width_mult=0.125)
    net.eval()
    return net


@pytest.mark.parametrize("engine", ["dynamic", "static"])
def test_expert_scorer_embeds_like_the_network(tiny_expert, talking_clips, engine):
    import paddle
    from ppgan.utils.audio import mel_index, melspectrogram

    frames, wav = talking_clips[0]
    frames, wav = frames[:30], wav[:30 * 640]
    scorer = ExpertScorer(tiny_expert, batch_size=7, engine=engine)
    count = scorer.num_windows(len(frames), len(wav), 25)
    # 26 windows of 5 frames fit; the mel (1 + 19200 // 200 = 97 steps) ends the last at 80 + 16
    assert count == 26
    video, audio = scorer.video_features(frames, count), scorer.audio_features(wav, 25, count)
    assert video.shape == audio.shape == (count, 64)

    mel = melspectrogram(wav)
    i = 11
    window = np.concatenate([frames[i + t] for t in range(5)], axis=2)  # (96, 96, 15)
    face = (window.transpose(2, 0, 1)[:, 48:] / 255.0).astype(np.float32)[None]
    audio_in = mel[:, mel_index(i, 25):mel_index(i, 25) + 16][None, None]
    with paddle.no_grad():
        audio_emb, face_emb = tiny_expert(paddle.to_tensor(audio_in), paddle.to_tensor(face))
    # the static program runs oneDNN kernels: equal up to float rounding
    np.testing.assert_allclose(video[i], face_emb.numpy()[0], atol=1e-5)
    np.testing.assert_allclose(audio[i], audio_emb.numpy()[0], atol=1e-5)

    result = score_clip(scorer, frames, wav, 25)
    assert result.num_windows == count and np.isfinite(result.mdist).all()


def test_unknown_engine_is_a_config_error(tiny_expert):
    from ppgan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="engine"):
        ExpertScorer(tiny_expert, engine="fastest")


def test_expert_width_is_read_from_the_weights(tiny_expert):
    state = {k: v.numpy() for k, v in tiny_expert.state_dict().items()}
    assert infer_expert_width(state) == pytest.approx(0.125)


# ------------------------------------------------------------------ SyncNet v2: MFCC and weights

def test_mfcc_matches_python_speech_features():
    """Golden rows computed once with python_speech_features 0.6 ``mfcc(x, 16000)`` (defaults)."""
    from ppgan.metrics.syncnet_v2 import mfcc

    t = np.arange(1200) / 16000
    x = np.round(8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1234 * t))
    x = x.astype(np.int16)
    x[480:1100] = 0
    feats = mfcc(x)
    assert feats.shape == (6, 13)  # 1 + ceil((1200 - 400) / 160) frames
    expected = np.array([
        [19.7732681924, 16.8378505636, -12.281357387, -21.5157140179, -9.5924332481,
         -5.7444425503, -24.2155742141, -40.6918454108, -22.3039922399, 19.4497538295,
         43.0425342124, 27.3267267058, -2.4426604044],
        [16.6541887761, -9.2201348984, -0.1944321226, -2.4796931081, -0.1278869418,
         -0.8241798714, 0.0953224533, -0.8360283214, -0.7670732032, -1.4063711974,
         -0.8614040624, -1.181964253, -1.1151680212],
        [18.5407966174, 3.2824675669, -6.1147726757, -32.4034309391, -26.7034127754,
         -8.9466679547, -10.4096063117, -28.9270596737, -23.5427021961, 7.4849559256,
         27.5503353375, 14.7497988622, -5.1462865895]])
    np.testing.assert_allclose(feats[[0, 3, 5]], expected, rtol=1e-8, atol=1e-8)
    # 100 feature frames per second: 4 per 25 fps video frame, as the protocol assumes
    assert len(mfcc(np.zeros(16000))) == 99


def test_mfcc_filterbank_is_triangular():
    from ppgan.metrics.syncnet_v2 import mfcc_filterbank

    bank = mfcc_filterbank()
    assert bank.shape == (26, 257)
    assert bank.min() >= 0 and np.allclose(bank.max(axis=1), 1.0)
    centres = bank.argmax(axis=1)
    assert (np.diff(centres) > 0).all()  # filters climb the spectrum in order


def _torch_syncnet_v2():
    """The same-topology PyTorch SyncNet v2 kept in benchmarks/evaluation.py (one copy)."""
    from benchmarks.evaluation import torch_syncnet_v2

    return torch_syncnet_v2()


def test_syncnet_v2_conversion_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    import paddle
    from ppgan.metrics.syncnet_v2 import SyncNetV2, SyncNetV2Scorer
    from ppgan.apps.convert_weights import convert_checkpoint
    from ppgan.utils.weights import load_weights

    torch.manual_seed(0)
    reference = _torch_syncnet_v2()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the renames are exercised
        for module in reference.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    reference.eval()
    src = tmp_path / "syncnet_v2.model"
    # the original file is a bare state dict in PyTorch's legacy (non-zip) format
    torch.save(reference.state_dict(), src, _use_new_zipfile_serialization=False)

    state = convert_checkpoint(str(src), "syncnet_v2")
    net = SyncNetV2()
    load_weights(net, state, strict=True)
    net.eval()
    assert len(state) == len(net.state_dict()) == 88

    rng = np.random.default_rng(0)
    mfcc_in = rng.normal(size=(2, 1, 13, 20)).astype(np.float32)
    frames_in = rng.uniform(0, 255, size=(2, 3, 5, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want_aud = reference.forward_aud(torch.from_numpy(mfcc_in)).numpy()
        want_lip = reference.forward_lip(torch.from_numpy(frames_in)).numpy()
    with paddle.no_grad():
        got_aud = net.forward_aud(paddle.to_tensor(mfcc_in)).numpy()
        got_lip = net.forward_lip(paddle.to_tensor(frames_in)).numpy()
    scale = max(np.abs(want_lip).max(), 1.0)
    np.testing.assert_allclose(got_aud, want_aud, atol=1e-4 * max(np.abs(want_aud).max(), 1.0))
    np.testing.assert_allclose(got_lip, want_lip, atol=1e-4 * scale)
    # the static inference program (oneDNN) the evaluation runs on CPU gives the same embeddings
    static = SyncNetV2Scorer(net, engine="static")
    np.testing.assert_allclose(static.embed_lips(frames_in), want_lip, atol=1e-4 * scale)
    np.testing.assert_allclose(static.embed_audio(mfcc_in), want_aud,
                               atol=1e-4 * max(np.abs(want_aud).max(), 1.0))

    # The scorer feeds the network exactly the protocol's windows.
    scorer = SyncNetV2Scorer(net, batch_size=4, engine="dynamic")
    assert scorer.num_windows(num_frames=12, num_samples=12 * 640, fps=25) == 7  # L - 5
    wav = rng.normal(scale=0.1, size=8 * 640).astype(np.float32)
    audio = scorer.audio_features(wav, 25, 3)
    from ppgan.metrics.syncnet_v2 import mfcc
    ceps = mfcc(wav.astype(np.float64) * 32768.0).T.astype(np.float32)
    with torch.no_grad():
        window = torch.from_numpy(ceps[None, None, :, 8:28].copy())  # window 2 = columns 8..27
        np.testing.assert_allclose(audio[2], reference.forward_aud(window).numpy()[0],
                                   atol=1e-4 * max(np.abs(audio).max(), 1.0))


def test_syncnet_v2_converter_rejects_other_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from ppgan.apps.convert_weights import convert_checkpoint
    from ppgan.utils.errors import WeightsError

    src = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, src)
    with pytest.raises(WeightsError):
        convert_checkpoint(str(src), "syncnet_v2")
