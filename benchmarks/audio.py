"""Audio front end speed: decode (PyAV, to 16 kHz mono) + mel spectrogram, for 10 s and 60 s.

Sources are the synthetic corpus's voice, stored as 44.1 kHz stereo in wav / flac / mp3 / m4a and as
the AAC track of an mp4, so decoding includes resampling and downmixing as for real recordings.
The yardstick is the reference's way: ``librosa.load(path, sr=16000)`` (soundfile / audioread; it
cannot open m4a or mp4 here) and the reference mel recipe (scipy ``lfilter`` pre-emphasis, librosa
STFT with reflect padding, Slaney mel). Prints one JSON object; times are medians of ``--repeats``.

    python -m benchmarks.audio [--repeats 5] [--durations 10 60]
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings

import av
import numpy as np

from ppgan.corpus_tools.synthetic_voice import random_speaker, sample_unit_track, synthesize_audio
from ppgan.utils.audio import load_audio, melspectrogram
from ppgan.utils.video import write_video

SOURCE_RATE = 44100
FORMATS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac"}


def _voice(seconds, seed=0):
    rng = np.random.default_rng(seed)
    track = sample_unit_track(rng, int(seconds * 25))
    return synthesize_audio(rng, random_speaker(rng), track)


def _write_audio(path, wav16k, codec):
    """Store 16 kHz mono audio as 44.1 kHz stereo with ``codec`` (PyAV resamples on encode)."""
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=SOURCE_RATE)
        stream.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SOURCE_RATE)
        for start in range(0, len(wav16k), 4096):
            frame = av.AudioFrame.from_ndarray(wav16k[None, start:start + 4096], format="flt", layout="mono")
            frame.sample_rate = 16000
            for converted in resampler.resample(frame):
                container.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))


def _median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _reference_mel(wav):
    """The reference recipe, for the side-by-side time (same maths as ours)."""
    import librosa
    from scipy import signal

    emphasised = signal.lfilter([1, -0.97], [1], wav)
    spec = np.abs(librosa.stft(emphasised, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    mel = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ spec
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def _librosa_load(path):
    import librosa

    try:
        return librosa.load(path, sr=16000)[0]
    except Exception as exc:  # noqa: BLE001 - the point is to record which formats it cannot open
        return type(exc).__name__


def bench_duration(folder, seconds, repeats):
    wav = _voice(seconds)
    paths = {}
    for suffix, codec in FORMATS.items():
        paths[suffix] = os.path.join(folder, f"voice{seconds}{suffix}")
        _write_audio(paths[suffix], wav, codec)
    paths[".mp4"] = os.path.join(folder, f"voice{seconds}.mp4")
    write_video(paths[".mp4"], (np.zeros((64, 64, 3), np.uint8) for _ in range(int(seconds * 25))), 25,
                audio=wav)
    decoded = load_audio(paths[".wav"])
    result = {"audio_seconds": seconds, "decode_ms": {}, "librosa_load_ms": {}}
    for suffix, path in paths.items():
        result["decode_ms"][suffix] = round(1000 * _median_seconds(lambda: load_audio(path), repeats), 2)
        probe = _librosa_load(path)
        result["librosa_load_ms"][suffix] = (
            round(1000 * _median_seconds(lambda: _librosa_load(path), repeats), 2)
            if isinstance(probe, np.ndarray) else f"fails: {probe}")
    result["mel_ms"] = round(1000 * _median_seconds(lambda: melspectrogram(decoded), repeats), 2)
    result["reference_mel_ms"] = round(1000 * _median_seconds(lambda: _reference_mel(decoded), repeats), 2)
    result["mel_max_abs_diff_vs_reference"] = float(np.abs(melspectrogram(decoded) - _reference_mel(decoded)).max())
    result["realtime_factor_wav_decode_plus_mel"] = round(
        seconds / ((result["decode_ms"][".wav"] + result["mel_ms"]) / 1000), 1)
    result["ratio_librosa_load_over_pyav"] = {
        suffix: round(ms / result["decode_ms"][suffix], 2)
        for suffix, ms in result["librosa_load_ms"].items() if isinstance(ms, float)}
    return result


def main():
    parser = argparse.ArgumentParser(description="decode + mel timings")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 60])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # librosa's audioread deprecation notice would drown the JSON
    # Warm-up: the first librosa / numba call pays one-off compilation costs.
    melspectrogram(_voice(1.0))
    _reference_mel(_voice(1.0).astype(np.float64))
    with tempfile.TemporaryDirectory() as folder:
        results = [bench_duration(folder, seconds, args.repeats) for seconds in args.durations]
    print(json.dumps({"benchmark": "audio", "machine": platform.processor() or platform.machine(),
                      "cpu_count": os.cpu_count(), "repeats": args.repeats, "results": results}, indent=1))


if __name__ == "__main__":
    main()
