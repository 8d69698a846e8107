"""Preprocess talking-face videos (LRS2 or any folder tree) into face crops, 16 kHz audio and mels.

    python tools/preprocess.py --data-root mvlrs_v1/main --out data/lrs2_preprocessed --workers 2
    python tools/preprocess.py --data-root RAW --out ROOT --detector s3fd --weights s3fd.pdparams
    python tools/preprocess.py --data-root data/synthetic/raw --out ROOT   # uses its boxes.json

Writes ROOT/<speaker>/<clip>/{i}.jpg, their uint8 frame cache frames_<size>_<signature>.npy, audio.wav,
mel.npy and ROOT/{train,val,test}.txt. Re-running skips the videos already finished. A boxes.json
lying in --data-root (the synthetic corpus writes one) is used as --boxes-json unless a detector,
--box or --boxes-json is given; the tool says so. The summary names every skipped or failed video
and why. Exit code 0 when at most --max-fail-ratio of the videos were skipped or failed, 1 when
more were (an error line says how many), 2 on bad arguments.
"""

import argparse
import os
import sys

from ppgan.corpus_tools.preprocess import preprocess_corpus
from ppgan.corpus_tools.preprocess_video import DetectorSpec, PreprocessOptions, load_boxes_json
from ppgan.data.contract import FACE_SIZE
from ppgan.utils.cli import run_main
from ppgan.utils.errors import ConfigError, DataError

BOXES_FILE = "boxes.json"  # fixed boxes beside the videos (tools/make_synthetic_data.py --raw-videos)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder tree of videos (LRS2: mvlrs_v1 or mvlrs_v1/main)")
    parser.add_argument("--out", required=True, help="corpus folder to write (resumed if it exists)")
    face = parser.add_argument_group("face detection")
    face.add_argument("--detector", default=None,
                      help="registered face detector name (default: haar, or the fixed boxes of a "
                           "boxes.json found in --data-root)")
    face.add_argument("--weights", help="weights file for detectors that need one (s3fd)")
    face.add_argument("--box", type=int, nargs=4, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                      help="one fixed face box for every video instead of detection")
    face.add_argument("--boxes-json", help='per-clip fixed boxes: {"<spk>/<clip>": [top, bottom, left, right]}')
    face.add_argument("--batch-size", type=int, default=32, help="frames per detector call")
    crop = parser.add_argument_group("crops")
    crop.add_argument("--fps", type=float, default=25.0, help="output frame rate (videos are resampled to it)")
    crop.add_argument("--img-size", type=int, default=FACE_SIZE, help="side of the saved crops; 0 keeps their size")
    crop.add_argument("--pads", type=int, nargs=4, default=(0, 0, 0, 0), metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                      help="pixels added around each face box")
    crop.add_argument("--smooth-window", type=int, default=5, help="frames averaged per box (1 = no smoothing)")
    crop.add_argument("--max-gap", type=int, default=5, help="longest face-less run filled by interpolation")
    crop.add_argument("--long-gaps", choices=("split", "drop"), default="split",
                      help="a longer gap splits the clip into parts, or drops the video")
    crop.add_argument("--min-frames", type=int, default=15, help="shortest clip part kept")
    crop.add_argument("--no-frame-cache", action="store_true",
                      help="write no uint8 frame caches (about 28 kB per 96 px frame; training then decodes "
                           "the JPEGs per sample, or builds the caches once into its dataset cache_dir)")
    split = parser.add_argument_group("split lists")
    split.add_argument("--splits", help="folder with train.txt/val.txt/test.txt of video keys (LRS2's lists)")
    split.add_argument("--val-fraction", type=float, default=0.05)
    split.add_argument("--test-fraction", type=float, default=0.05)
    parser.add_argument("--max-fail-ratio", type=float, default=0.1,
                        help="exit 1 when more than this share of the videos are skipped (no usable "
                             "face) or failed; default: %(default)s")
    parser.add_argument("--workers", type=int, default=1, help="videos processed in parallel")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def detector_spec(args):
    """The detector the flags ask for: --boxes-json, --box, --detector [--weights], else the
    data root's own boxes.json (said on stdout), else haar."""
    if args.box and args.boxes_json:
        raise ConfigError("give either --box or --boxes-json, not both")
    if args.weights and (args.box or args.boxes_json):
        raise ConfigError("--weights is for --detector; fixed boxes (--box, --boxes-json) need none")
    if args.boxes_json:
        return DetectorSpec(boxes=load_boxes_json(args.boxes_json), boxes_path=args.boxes_json)
    if args.box:
        return DetectorSpec(name="box", kwargs={"box": list(args.box)})
    found = os.path.join(args.data_root, BOXES_FILE)
    if args.detector is None and not args.weights and os.path.isfile(found):
        print(f"using the fixed face boxes of {found} (pass --detector haar to detect faces instead)")
        return DetectorSpec(boxes=load_boxes_json(found), boxes_path=found)
    return DetectorSpec(name=args.detector or "haar", kwargs={"weights": args.weights} if args.weights else {})


def check_losses(summary, max_fail_ratio):
    """Raise when more than ``max_fail_ratio`` of the videos were skipped or failed."""
    total = len(summary.results)
    lost = summary.count("skipped") + summary.count("failed")
    if total and lost / total > max_fail_ratio:
        raise DataError(f"{lost} of {total} videos were skipped or failed ({100 * lost / total:.0f} % > "
                        f"--max-fail-ratio {max_fail_ratio:g}); the reasons are listed above (for "
                        f"'no face found' try --detector s3fd --weights s3fd.pdparams, --box or "
                        f"--boxes-json)")


def main(argv=None):
    args = parse_args(argv)
    if not 0.0 <= args.max_fail_ratio <= 1.0:
        raise ConfigError(f"--max-fail-ratio must be between 0 and 1, got {args.max_fail_ratio}")
    options = PreprocessOptions(fps=args.fps, img_size=args.img_size, pads=tuple(args.pads),
                                smooth_window=args.smooth_window, max_gap=args.max_gap,
                                min_frames=args.min_frames, long_gaps=args.long_gaps,
                                detect_batch=args.batch_size, frame_cache=not args.no_frame_cache)
    summary = preprocess_corpus(args.data_root, args.out, detector=detector_spec(args), workers=args.workers,
                                options=options, splits_dir=args.splits, val_fraction=args.val_fraction,
                                test_fraction=args.test_fraction, progress=not args.quiet)
    print(summary, flush=True)
    try:
        check_losses(summary, args.max_fail_ratio)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
