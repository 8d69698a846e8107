"""Write the synthetic talking-face corpus (preprocessed LRS2 layout, optionally raw videos).

    python tools/make_synthetic_data.py --out data/synthetic --speakers 6 --clips 8 --seed 0
"""

import argparse

from ppgan.corpus_tools.synthetic import make_synthetic_corpus
from ppgan.data.contract import FACE_SIZE
from ppgan.utils.cli import run_main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (must be empty or new)")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--clips", type=int, default=6, help="clips per speaker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-frames", type=int, default=50)
    parser.add_argument("--max-frames", type=int, default=75)
    parser.add_argument("--img-size", type=int, default=FACE_SIZE, help="side of the face crops in pixels")
    parser.add_argument("--raw-videos", action="store_true",
                        help="also write raw/<speaker>/<clip>.mp4 with the face inside a larger frame")
    parser.add_argument("--raw-frame-size", type=int, nargs=2, default=(160, 160),
                        metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = make_synthetic_corpus(
        args.out, speakers=args.speakers, clips=args.clips, seed=args.seed,
        min_frames=args.min_frames, max_frames=args.max_frames, img_size=args.img_size,
        raw_videos=args.raw_videos, raw_frame_size=tuple(args.raw_frame_size),
        progress=not args.quiet, overwrite=args.overwrite)
    splits = summary["splits"]
    print(f"wrote {summary['clips']} clips ({summary['speakers']} speakers), {summary['frames']} frames, "
          f"{summary['seconds']:.1f} s to {summary['out_dir']}; splits train {splits['train']} / "
          f"val {splits['val']} / test {splits['test']}"
          + ("; raw videos in raw/" if summary["raw_videos"] else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
