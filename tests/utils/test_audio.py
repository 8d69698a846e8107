"""ppgan.utils.audio: decoding through PyAV and the mel spectrogram.

The mel is checked against an independent implementation of the documented formula written here
(numpy FFT and a Slaney mel filter bank built from its definition, no librosa), and against facts
(shape, where a pure tone lands, silence, range).
"""

import subprocess
import sys
import wave

import av
import numpy as np
import pytest

from ppgan.utils.audio import SAMPLE_RATE, load_audio, melspectrogram, save_wav, to_pcm16
from ppgan.utils.errors import MediaError
from tests import REPO_ROOT

N_FFT, HOP, NUM_MELS, FMIN, FMAX = 800, 200, 80, 55.0, 7600.0


# ----------------------------------------------------------------------------- reference mel
def _hz_to_mel(hz):
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


def reference_filterbank():
    """(80, 401) triangular filters on Slaney-mel-spaced edges, each scaled to unit area."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), NUM_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    bank = np.zeros((NUM_MELS, bins.size))
    for m in range(NUM_MELS):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        bank[m] = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))
    return bank, edges[1:-1]


def reference_mel(wav, pad_mode="reflect"):
    """The documented pipeline, step by step, in float64."""
    x = np.asarray(wav, dtype=np.float64)
    emphasised = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    padded = np.pad(emphasised, N_FFT // 2, mode=pad_mode)
    num_frames = 1 + len(x) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.stack([padded[i * HOP:i * HOP + N_FFT] * window for i in range(num_frames)], axis=1)
    magnitude = np.abs(np.fft.rfft(frames, axis=0))
    mel = reference_filterbank()[0] @ magnitude
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def _tone(freq, seconds, amplitude=0.5, rate=SAMPLE_RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speech_like(seconds=1.0, seed=0):
    """Harmonics with a moving envelope plus noise and a silent gap: exercises every mel band."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    wav = sum(np.sin(2 * np.pi * 140 * k * t + rng.uniform(0, 6)) / k for k in range(1, 40))
    wav = 0.2 * wav * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)
    wav[n // 3:n // 2] = 0.0
    return wav.astype(np.float32)


# ----------------------------------------------------------------------------- mel tests
def test_mel_matches_independent_implementation():
    wav = _speech_like(1.3)
    ours = melspectrogram(wav)
    expected = reference_mel(wav)
    assert ours.dtype == np.float32
    assert ours.shape == expected.shape
    # float32 FFT inside librosa vs float64 here: agreement to a few 1e-4 of the [-4, 4] range.
    assert np.abs(ours - expected).max() < 2e-3
    assert np.abs(ours - expected).mean() < 1e-4


def test_mel_uses_reflect_padding():
    """The edge columns depend on the padding; constant padding (librosa's new default) differs."""
    wav = _tone(700, 0.5) + 0.3
    ours = melspectrogram(wav)
    assert np.abs(ours[:, 0] - reference_mel(wav, "reflect")[:, 0]).max() < 2e-3
    assert np.abs(ours[:, 0] - reference_mel(wav, "constant")[:, 0]).max() > 0.1


def test_reference_filterbank_matches_slaney_definition_facts():
    """Guards the test's own reference: unit area per filter and the first centre above 55 Hz."""
    bank, centres = reference_filterbank()
    bin_width = SAMPLE_RATE / N_FFT
    areas = bank.sum(axis=1) * bin_width  # sampled triangle area (exact once filters span bins)
    assert np.all(areas[10:] == pytest.approx(1.0, rel=0.05))
    assert FMIN < centres[0] < 100 and 7000 < centres[-1] < FMAX


@pytest.mark.parametrize("num_samples", [1, 199, 200, 201, 801, 12345, 16000])
def test_mel_shape_and_short_inputs(num_samples):
    wav = np.random.default_rng(num_samples).uniform(-0.1, 0.1, num_samples).astype(np.float32)
    mel = melspectrogram(wav)
    assert mel.shape == (80, 1 + num_samples // 200)
    if num_samples > 1:
        # Inputs shorter than the FFT are reflected several times over; still the same formula.
        assert np.abs(mel - reference_mel(wav)).max() < 2e-3


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_pure_tone_lands_in_its_band(freq):
    mel = melspectrogram(_tone(freq, 1.0))
    _, centres = reference_filterbank()
    loudest = int(np.argmax(mel[:, 10:-10].mean(axis=1)))
    nearest = int(np.argmin(np.abs(centres - freq)))
    assert abs(loudest - nearest) <= 1
    # Far from the tone the bands are near the floor (only window leakage remains).
    far = np.abs(centres - freq) > 0.5 * freq
    assert mel[far, 10:-10].mean() < mel[loudest, 10:-10].mean() - 3


def test_silence_gives_minus_four_and_range_is_clipped():
    assert np.all(melspectrogram(np.zeros(8000, np.float32)) == -4.0)
    noise = np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)
    mel = melspectrogram(noise)
    assert -4.0 < mel.min() and mel.max() < 4.0  # full-scale noise stays inside the range
    # Far louder than any recording (the function does not require [-1, 1]): clipped at +4.
    loud = melspectrogram(1000 * noise)
    assert loud.max() == 4.0 and loud.min() >= -4.0
    assert np.abs(loud - np.clip(reference_mel(1000 * noise), -4, 4)).max() < 2e-3


def test_mel_rejects_bad_shapes():
    with pytest.raises(MediaError):
        melspectrogram(np.zeros(0, np.float32))
    with pytest.raises(MediaError):
        melspectrogram(np.zeros((2, 1000), np.float32))


# ----------------------------------------------------------------------------- decoding
def _write_with_pyav(path, wav, rate, channels, codec):
    """Encode float mono ``wav`` (duplicated to ``channels``) with PyAV into ``path``."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        planar = np.repeat(np.asarray(wav, np.float32)[None, :], channels, axis=0)
        for start in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + 1024]),
                                               format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _dominant_frequency(wav):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.argmax(spectrum) * SAMPLE_RATE / len(wav)


@pytest.mark.parametrize("suffix,codec,rate,channels", [
    (".wav", "pcm_s16le", 44100, 2),
    (".mp3", "libmp3lame", 22050, 1),
    (".m4a", "aac", 48000, 2),
    (".flac", "flac", 32000, 1),
])
def test_decodes_common_formats_to_16k_mono(tmp_path, suffix, codec, rate, channels):
    path = tmp_path / f"tone{suffix}"
    _write_with_pyav(path, _tone(440, 1.5, rate=rate), rate, channels, codec)
    wav = load_audio(str(path))
    assert wav.dtype == np.float32 and wav.ndim == 1
    # Lossy codecs add encoder delay / padding of a few tens of ms, never more.
    assert abs(len(wav) - 1.5 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert _dominant_frequency(wav[2000:-2000]) == pytest.approx(440, abs=3)
    # A 0.5-amplitude tone keeps its level: channels are averaged (not summed or scaled up).
    assert np.abs(wav[2000:-2000]).max() == pytest.approx(0.5, abs=0.05)


def test_decodes_audio_track_of_a_video(tmp_path):
    from ppgan.utils.video import write_video

    path = tmp_path / "talk.mp4"
    frames = [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(25)]
    write_video(str(path), frames, 25, audio=_tone(880, 1.0), audio_codec="aac")
    wav = load_audio(str(path))
    assert abs(len(wav) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert _dominant_frequency(wav[2000:-2000]) == pytest.approx(880, abs=3)


def test_wav_round_trip_is_bit_exact_and_idempotent(tmp_path):
    """save_wav quantises as decoders scale (k / 32768), so load -> save -> load changes nothing,
    including near full scale where a 32767 scaling would drift by one step."""
    wav = np.concatenate([_speech_like(0.5), np.float32([0.99, -1.0, 1.0, 0.75, -0.6])])
    path = tmp_path / "a.wav"
    save_wav(str(path), wav)
    first = load_audio(str(path))
    assert np.array_equal(first, to_pcm16(wav).astype(np.float32) / 32768)
    save_wav(str(path), first)
    assert np.array_equal(load_audio(str(path)), first)
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, SAMPLE_RATE)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left


def test_to_pcm16_clips_and_rounds():
    pcm = to_pcm16(np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 1 / 65536 * 1.01]))
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [0, 32767, -32768, 32767, -32768, 16384, 1]


# ----------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_audio(str(tmp_path / "nope.wav"))


def test_unreadable_file(tmp_path):
    path = tmp_path / "garbage.mp3"
    path.write_bytes(b"this is not audio at all" * 20)
    with pytest.raises(MediaError, match="garbage.mp3"):
        load_audio(str(path))


def test_video_without_audio_stream(tmp_path):
    from ppgan.utils.video import write_video

    path = tmp_path / "mute.mp4"
    write_video(str(path), [np.zeros((16, 16, 3), np.uint8)] * 3, 25)
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(str(path))


def test_empty_audio_file(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
    with pytest.raises(MediaError, match="no samples"):
        load_audio(str(path))


@pytest.mark.parametrize("name,content", [("missing.wav", None), ("bad.m4a", b"\x00" * 300)])
def test_bad_audio_through_a_tool_exits_2_with_one_line(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    script = ("import sys; from ppgan.utils.cli import run_main; from ppgan.utils.audio import load_audio; "
              "run_main(lambda argv: load_audio(sys.argv[1]) is None)")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                            cwd=str(REPO_ROOT),
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and name in lines[0]
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- librosa parity
def test_mel_equals_librosa_pipeline_without_importing_it():
    """The published networks were trained on librosa's features: ours, computed with numpy only
    (importing librosa costs the CLI about a second), must match them to float32 rounding."""
    librosa = pytest.importorskip("librosa")
    from ppgan.utils.audio import mel_basis, preemphasis
    np.testing.assert_allclose(mel_basis(), librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=NUM_MELS,
                                                                fmin=FMIN, fmax=FMAX), rtol=1e-6, atol=1e-9)
    for wav in (_speech_like(1.3), _tone(440, 0.3) + 0.2, _speech_like(0.02, seed=3)):
        spec = np.abs(librosa.stft(preemphasis(wav), n_fft=N_FFT, hop_length=HOP, win_length=N_FFT,
                                   window="hann", center=True, pad_mode="reflect"))
        db = 20 * np.log10(np.maximum(1e-5, np.dot(mel_basis(), spec))) - 20
        expected = np.clip(8 * (db + 100) / 100 - 4, -4, 4).astype(np.float32)
        assert np.abs(melspectrogram(wav) - expected).max() < 1e-5
    code = ("import sys, numpy as np; from ppgan.utils.audio import melspectrogram; "
            "melspectrogram(np.zeros(4000, np.float32)); "
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
