"""Run PaddleGAN 2.1.0's ``Wav2LipPredictor`` once, inside the benchmark-only virtual environment
(``benchmarks/make_bench_venv.sh``), and print one JSON line: wall seconds, peak RSS, the shims.

    /work/bench-venv/bin/python benchmarks/paddlegan_runner.py --face F --audio A --weights W \
        --box TOP BOTTOM LEFT RIGHT --outfile out.mp4

PaddleGAN 2.1.0 was written for Paddle 2.1, numpy < 1.24 and librosa 0.8. Only these import shims
are applied (each is listed in the output), nothing in its predictor is changed:

1. ``ppgan.apps``, ``ppgan.models`` and ``ppgan.models.generators`` are registered as bare
   packages, so importing the Wav2Lip predictor does not run their ``__init__`` files, which
   import every other PaddleGAN model and their dependencies (munch, ...) that Wav2Lip never uses.
2. ``librosa.filters.mel`` accepts ``sr`` and ``n_fft`` positionally again (keyword-only since
   librosa 0.10; PaddleGAN passes them positionally).
3. An ``ffmpeg`` executable on PATH (imageio-ffmpeg's static build): PaddleGAN shells out to it
   to mux the audio. This machine has no system ffmpeg.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import types

SHIMS = [
    "bare packages ppgan.apps, ppgan.models, ppgan.models.generators (skip their __init__ imports "
    "of unrelated models)",
    "librosa.filters.mel(sr, n_fft, ...) positional arguments (keyword-only since librosa 0.10)",
    "ffmpeg on PATH from imageio-ffmpeg (no system ffmpeg)",
]


def apply_shims(workdir):
    import ppgan

    if getattr(ppgan, "__version__", None) != "2.1.0":
        sys.exit(f"error: {ppgan.__file__} is not PaddleGAN 2.1.0 (unset PYTHONPATH; run in the "
                 f"venv made by benchmarks/make_bench_venv.sh)")
    root = os.path.dirname(ppgan.__file__)
    for name in ("ppgan.apps", "ppgan.models", "ppgan.models.generators"):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, *name.split(".")[1:])]
        sys.modules[name] = module

    import librosa.filters

    keyword_mel = librosa.filters.mel

    def mel(sr=None, n_fft=None, *args, **kwargs):
        if args:
            raise TypeError("only sr and n_fft may be positional")
        return keyword_mel(sr=sr, n_fft=n_fft, **kwargs)

    librosa.filters.mel = mel

    import imageio_ffmpeg

    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "ffmpeg")
    if not os.path.exists(link):
        os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), link)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--box", type=int, nargs=4, required=True)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--outfile", required=True)
    parser.add_argument("--batch", type=int, default=128, help="PaddleGAN's default: 128")
    args = parser.parse_args()
    face, audio, outfile, weights = (os.path.abspath(p) for p in (args.face, args.audio, args.outfile,
                                                                  args.weights))
    workdir = tempfile.mkdtemp(prefix="paddlegan-run-")
    started = time.perf_counter()
    apply_shims(workdir)
    os.chdir(workdir)  # PaddleGAN writes ./temp/result.avi
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor

    predictor = Wav2LipPredictor(checkpoint_path=weights, box=args.box, fps=args.fps,
                                 wav2lip_batch_size=args.batch)
    predictor.run(face, audio, outfile)
    wall = time.perf_counter() - started
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    print(json.dumps({"system": "paddlegan-2.1.0", "seconds": wall, "peak_rss_mib": rss,
                      "shims": SHIMS}))


if __name__ == "__main__":
    main()
