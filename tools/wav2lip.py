"""Lip-sync a face video or image to any speech audio (Wav2Lip inference).

    python tools/wav2lip.py --face face.mp4 --audio speech.wav --checkpoint_path wav2lip_hq.pdparams \
        --outfile results/result_voice.mp4

The checkpoint may be this project's training checkpoint, PaddleGAN's ``wav2lip_hq.pdparams``, a
PyTorch file converted by tools/convert_weights.py, or a program from tools/export_model.py.
Faces are found with OpenCV's Haar cascade unless --face_detector_weights (S3FD) or --box is given.
PaddleGAN's flags work too: --face_detector sfd, --static True/False, --cpu, --face_enhancement, and
no --checkpoint_path (its cached wav2lip_hq.pdparams is used; see ppgan/utils/weights_home.py).
When a frame shows several faces, the largest is taken first and then the one overlapping the
previous frame's face is followed.
"""

import argparse
import os
import warnings

# Keep the terminal to progress and one error line: Paddle's C++ info/warning logs and its
# import-time ccache notice say nothing a user of this tool can act on.
os.environ.setdefault("GLOG_minloglevel", "2")
warnings.filterwarnings("ignore", message="No ccache found")

from ppgan.apps.predictor_args import add_predictor_arguments, predictor_options  # noqa: E402
from ppgan.utils.cli import run_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", required=True, help="video or image (jpg, png, ...) showing a face")
    parser.add_argument("--audio", required=True, help="speech: any audio file or a video's sound")
    parser.add_argument("--outfile", default="results/result_voice.mp4",
                        help="output video (.mp4, .mov, .mkv); default: %(default)s")
    add_predictor_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor

    Wav2LipPredictor.check_paths(args.face, args.audio, args.outfile)
    predictor = Wav2LipPredictor(**predictor_options(args))
    result = predictor.run(args.face, args.audio, args.outfile)
    print(f"wrote {result.outfile}: {result.frames} frames at {result.fps:.3f} fps in "
          f"{result.total_seconds:.1f} s (faces detected {result.faces_detected}, interpolated "
          f"{result.faces_interpolated}, unchanged {result.frames_kept}; generator precision "
          f"{result.precision})")
    return 0


if __name__ == "__main__":
    run_main(main)
