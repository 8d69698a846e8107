"""Score generated talking-face videos: LSE-D / LSE-C beside ground truth and a shuffled-audio floor.

    python tools/evaluate.py --videos output/demo/eval/dubbed --reference data/synthetic \
        --weights output/demo/syncnet/best.pdparams
    python tools/evaluate.py --videos results/ --reference lrs2_test/ \
        --scorer syncnet_v2 --weights syncnet_v2.pdparams

Writes <out>/evaluation.json, <out>/evaluation.md and <out>/evaluation_offsets.png and prints the
markdown table. Videos pair with references by relative path without extension; references may
be videos or preprocessed clip folders ({i}.jpg + audio.wav).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppgan.utils.cli import run_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", required=True, help="folder of generated videos")
    parser.add_argument("--reference", help="folder of reference videos or clip folders "
                                            "(gives the ground-truth row and PSNR / SSIM)")
    parser.add_argument("--out", help="report folder (default: --videos)")
    parser.add_argument("--scorer", default="expert", choices=("expert", "syncnet_v2"),
                        help="embedding model: our trained expert (cosine distance) or the "
                             "original SyncNet v2 (Euclidean, the published protocol)")
    parser.add_argument("--weights", required=True,
                        help="expert checkpoint, or syncnet_v2 weights converted with "
                             "tools/convert_weights.py --arch syncnet_v2")
    parser.add_argument("--net-name", help="which net of a multi-net checkpoint holds the expert")
    parser.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="face region in every frame (-1 = to the edge); default: whole frame")
    parser.add_argument("--vshift", type=int, default=15, help="offsets searched each side (frames)")
    parser.add_argument("--no-image-metrics", action="store_true",
                        help="skip PSNR / SSIM (videos driven by other audio are no reconstruction)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppgan.apps.evaluate import evaluate_videos

    scorer_cfg = {"name": args.scorer, "weights": args.weights}
    if args.net_name:
        if args.scorer != "expert":
            from ppgan.utils.errors import ConfigError
            raise ConfigError("--net-name applies to --scorer expert only")
        scorer_cfg["net_name"] = args.net_name
    if args.batch_size:
        scorer_cfg["batch_size"] = args.batch_size
    result = evaluate_videos(args.videos, args.reference, scorer_cfg=scorer_cfg, out_dir=args.out,
                             box=tuple(args.box) if args.box else None, vshift=args.vshift,
                             image_metrics=not args.no_image_metrics)
    print(result["markdown"])
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
