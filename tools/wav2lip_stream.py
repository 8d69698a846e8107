"""Stream lip-sync: a fixed avatar driven by audio chunks, written to an mp4 as frames are made.

    python tools/wav2lip_stream.py --face avatar.png --audio speech.wav --checkpoint_path w.pdparams
    ffmpeg -i talk.mp3 -f s16le -ac 1 -ar 16000 - | \
        python tools/wav2lip_stream.py --face avatar.mp4 --audio - --checkpoint_path w.pdparams

The avatar is prepared once (faces found, crops cached); then the audio is pushed in --chunk_ms
pieces (a file is read whole and cut; ``--audio -`` reads raw 16 kHz mono PCM from stdin as it
arrives) and every frame is encoded as soon as it is generated. --realtime paces a file like a
live source. At the end the tool reports the first-frame latency (from the first audio chunk to
the first frame), the sustained frame rate and the share of each stage. All predictor flags of
tools/wav2lip.py apply.
"""

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("GLOG_minloglevel", "2")
warnings.filterwarnings("ignore", message="No ccache found")

import numpy as np  # noqa: E402

from ppgan.apps.predictor_args import add_predictor_arguments, predictor_options  # noqa: E402
from ppgan.utils.cli import run_main  # noqa: E402
from ppgan.utils.errors import ConfigError, MediaError  # noqa: E402

SAMPLE_RATE = 16000
PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", required=True, help="avatar: video or image showing a face")
    parser.add_argument("--audio", required=True,
                        help="speech file, or - for raw 16 kHz mono PCM on stdin (see --pcm_format)")
    parser.add_argument("--outfile", default="results/result_stream.mp4",
                        help="output video (.mp4, .mov, .mkv); default: %(default)s")
    parser.add_argument("--pcm_format", choices=sorted(PCM_FORMATS), default="s16le",
                        help="sample format of --audio -; default: %(default)s")
    parser.add_argument("--chunk_ms", type=float, default=40.0,
                        help="audio pushed per step, in milliseconds; default: %(default)s")
    parser.add_argument("--realtime", action="store_true",
                        help="push a file's chunks no faster than real time (like a live source)")
    parser.add_argument("--fixed_batch", action="store_true",
                        help="use --wav2lip_batch_size as it is instead of measuring the fastest "
                             "batch up to it on the avatar")
    add_predictor_arguments(parser)
    return parser.parse_args(argv)


def file_chunks(path, chunk, realtime):
    """Chunks of ``chunk`` samples of an audio file (paced to real time when asked)."""
    from ppgan.utils.audio import load_audio

    wav = load_audio(path)
    started = time.perf_counter()
    for start in range(0, wav.size, chunk):
        if realtime:  # the chunk is complete only once its last sample has "arrived"
            delay = started + min(wav.size, start + chunk) / SAMPLE_RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield wav[start:start + chunk]


def stdin_chunks(stream, chunk, pcm_format):
    """Chunks of at most ``chunk`` samples of raw PCM read from a binary stream as it arrives."""
    dtype = PCM_FORMATS[pcm_format]
    scale = 1.0 / 32768.0 if dtype.kind == "i" else 1.0
    leftover = b""
    while True:
        data = stream.read1(chunk * dtype.itemsize) if hasattr(stream, "read1") else \
            stream.read(chunk * dtype.itemsize)
        if not data:
            break
        data = leftover + data
        usable = len(data) - len(data) % dtype.itemsize
        data, leftover = data[:usable], data[usable:]
        if usable:
            yield np.frombuffer(data, dtype).astype(np.float32) * np.float32(scale)


def main(argv=None, stdin=None):
    args = parse_args(argv)
    from ppgan.apps.wav2lip_stream import Wav2LipStream
    from ppgan.utils.background_writer import open_video_writer
    from ppgan.utils.video import CONTAINER_FORMATS

    if os.path.splitext(args.outfile)[1].lower() not in CONTAINER_FORMATS:
        raise ConfigError(f"cannot write {args.outfile}: use one of {', '.join(CONTAINER_FORMATS)}")
    if not os.path.isfile(args.face):
        raise MediaError(f"face file not found: {args.face}")
    if args.audio != "-" and not os.path.isfile(args.audio):
        raise MediaError(f"audio file not found: {args.audio}")
    if not args.chunk_ms > 0:
        raise ConfigError(f"--chunk_ms must be positive, got {args.chunk_ms}")
    chunk = max(1, int(round(args.chunk_ms * SAMPLE_RATE / 1000)))

    stream = Wav2LipStream(batch_size=None if args.fixed_batch else "auto", **predictor_options(args))
    started = time.perf_counter()
    avatar = stream.prepare(args.face)
    prepared = time.perf_counter() - started
    if args.audio == "-":
        chunks = stdin_chunks(stdin or sys.stdin.buffer, chunk, args.pcm_format)
    else:
        chunks = file_chunks(args.audio, chunk, args.realtime)

    os.makedirs(os.path.dirname(os.path.abspath(args.outfile)), exist_ok=True)
    first_chunk = first_frame = last_frame = None
    samples = frames = 0
    with open_video_writer(args.encoder, args.outfile, avatar.fps, live_audio=True) as writer:
        def write(out):
            nonlocal first_frame, last_frame, frames
            if not out:
                return
            now = time.perf_counter()
            first_frame = now if first_frame is None else first_frame
            encode_started = now
            for frame in out:
                writer.write(frame.image)
            last_frame = time.perf_counter()
            stream.seconds["encode"] += last_frame - encode_started
            frames += len(out)

        for piece in chunks:
            first_chunk = time.perf_counter() if first_chunk is None else first_chunk
            samples += piece.size
            writer.add_audio(piece)
            write(stream.push(piece))
        if samples == 0:
            raise MediaError("no audio samples arrived: give a non-empty recording")
        write(stream.finish())
        if frames == 0:
            raise MediaError(f"the audio ({samples / SAMPLE_RATE:.3f} s) is too short for one video "
                             f"frame at {avatar.fps:g} fps")
    total = time.perf_counter() - first_chunk
    audio_seconds = samples / SAMPLE_RATE
    sustained = (frames - 1) / (last_frame - first_frame) if frames > 1 and last_frame > first_frame \
        else float("nan")
    stages = dict(stream.seconds)
    if getattr(writer, "encode_seconds", None) is not None:
        stages["encode (child process)"] = writer.encode_seconds
        stages["hand-over"] = stages.pop("encode")
    shares = ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in stages.items())
    rates = ", ".join(f"{size}: {rate:.1f}" for size, rate in stream.batch_rates.items())
    print(f"wrote {args.outfile}: {frames} frames at {avatar.fps:g} fps for {audio_seconds:.2f} s of "
          f"audio; avatar prepared in {prepared:.2f} s ({avatar.source_frames} source frames); "
          f"generator batch {stream.batch_size}" + (f" (measured frames/s by batch: {rates})" if rates else "")
          + f", precision {stream.precision}")
    print(f"first frame {first_frame - first_chunk:.3f} s after the first audio chunk; sustained "
          f"{sustained:.1f} fps; {total:.2f} s from the first chunk to the end (real-time factor "
          f"{total / audio_seconds:.2f}); stage time and share of that: {shares}")
    return 0


if __name__ == "__main__":
    run_main(main)
