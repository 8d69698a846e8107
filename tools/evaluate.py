"""Score generated talking-face videos: LSE-D / LSE-C beside ground truth and a shuffled-audio floor.

    python tools/evaluate.py --videos output/demo/eval/dubbed --reference data/synthetic \
        --weights output/demo/syncnet/best.pdparams
    python tools/evaluate.py --videos results/ --reference lrs2_test/ \
        --scorer syncnet_v2 --weights syncnet_v2.pdparams
    # synthetic corpora: a generator's dubbed test clips against the oracle (--weights optional)
    python tools/evaluate.py --oracle --generator output/demo/wav2lip/best.pdparams \
        --reference output/demo/corpus --out output/oracle_check

Writes <out>/evaluation.json, <out>/evaluation.md and <out>/evaluation_offsets.png and prints the
markdown table. Videos pair with references by relative path without extension; references may
be videos or preprocessed clip folders ({i}.jpg + audio.wav).

--oracle (synthetic corpora, --reference is the corpus): lower-half PSNR / SSIM and mouth-opening
correlation of dubbed clips against the oracle, beside the input-unchanged floor and the oracle
ceiling. With --generator the split's clips are dubbed first (each face driven by the next clip's
audio, as --evaluate-only does); with --videos the dubbed videos and their pairs.json are scored.
Without --weights only the oracle report (<out>/oracle.*) is written.
"""

import argparse
import os

from ppgan.inference.engine import PRECISIONS
from ppgan.utils.cli import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", help="folder of generated videos")
    parser.add_argument("--reference", help="folder of reference videos or clip folders "
                                            "(gives the ground-truth row and PSNR / SSIM)")
    parser.add_argument("--out", help="report folder (default: --videos)")
    parser.add_argument("--scorer", default="expert", choices=("expert", "syncnet_v2"),
                        help="embedding model: our trained expert (cosine distance) or the "
                             "original SyncNet v2 (Euclidean, the published protocol)")
    parser.add_argument("--weights",
                        help="expert checkpoint, or syncnet_v2 weights converted with "
                             "tools/convert_weights.py --arch syncnet_v2 (optional with --oracle)")
    parser.add_argument("--net-name", help="which net of a multi-net checkpoint holds the expert")
    parser.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="face region in every frame (-1 = to the edge); default: whole frame")
    parser.add_argument("--vshift", type=int, default=15, help="offsets searched each side (frames)")
    parser.add_argument("--no-image-metrics", action="store_true",
                        help="skip PSNR / SSIM (videos driven by other audio are no reconstruction)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass")
    oracle = parser.add_argument_group("oracle (synthetic corpora)")
    oracle.add_argument("--oracle", action="store_true",
                        help="score dubbed clips against the oracle of the --reference corpus")
    oracle.add_argument("--generator", help="generator checkpoint: dub the split's clips first")
    oracle.add_argument("--split", default="test", help="corpus split to dub (default: %(default)s)")
    oracle.add_argument("--max-clips", type=int, help="dub at most this many clips")
    oracle.add_argument("--mel-frame-offset", type=int,
                        help="audio alignment of the generator (default: the one it was trained "
                             "with, from its checkpoint's config)")
    oracle.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="arithmetic of the generator's inference program (bf16: CPUs with "
                             "native bf16; else fp32 after one log line); default: %(default)s")
    return parser.parse_args(argv)


def check_args(args):
    """One clear error for a bad combination of options."""
    from ppgan.utils.errors import ConfigError

    if args.oracle:
        if not args.reference:
            raise ConfigError("--oracle needs --reference: the synthetic corpus the clips come from")
        if bool(args.videos) == bool(args.generator):
            raise ConfigError("--oracle needs exactly one of --videos (dubbed videos with their "
                              "pairs.json) and --generator (dub the split's clips now)")
    else:
        if args.generator or args.precision != "fp32":
            raise ConfigError("--generator and --precision apply to --oracle only")
        if not args.videos or not args.weights:
            raise ConfigError("pass --videos and --weights (or --oracle, see --help)")
    if args.net_name and args.scorer != "expert":
        raise ConfigError("--net-name applies to --scorer expert only")


def scorer_config(args):
    """The sync scorer's config, or None without --weights."""
    if not args.weights:
        return None
    scorer_cfg = {"name": args.scorer, "weights": args.weights}
    if args.net_name:
        scorer_cfg["net_name"] = args.net_name
    if args.batch_size:
        scorer_cfg["batch_size"] = args.batch_size
    return scorer_cfg


def trained_offset(weights_path):
    """The ``mel_frame_offset`` a generator file generates with: its inference spec's (the
    offset our checkpoints were trained with; 0 for PaddleGAN / original files), as everywhere."""
    from ppgan.inference.spec import spec_of_weights
    from ppgan.utils.weights import read_weights_file

    return spec_of_weights(read_weights_file(weights_path), weights_path)["mel_frame_offset"]


def run_oracle(args):
    """--oracle: dub the split with --generator, or score --videos; print the tables."""
    from ppgan.apps.evaluate import evaluate_generator_on_split, evaluate_videos
    from ppgan.apps.oracle_evaluation import evaluate_oracle
    from ppgan.datasets.corpus import read_filelist
    from ppgan.metrics.report import write_report
    from ppgan.models.lse_scorers import build_sync_scorer
    from ppgan.utils.config_paths import resolve_config_path

    scorer_cfg = scorer_config(args)
    scorer = build_sync_scorer(scorer_cfg) if scorer_cfg else None
    if args.generator:
        from ppgan.apps.generator_loader import load_generator

        out = args.out or os.path.join("output", "oracle_evaluation")
        keys = read_filelist(resolve_config_path(args.split, "filelist", anchor=args.reference))
        offset = (args.mel_frame_offset if args.mel_frame_offset is not None
                  else trained_offset(args.generator))
        result = evaluate_generator_on_split(
            load_generator(args.generator, precision=args.precision), args.reference, keys, out, scorer,
            max_clips=args.max_clips, oracle=True, predictor_options={"mel_frame_offset": offset})
        markdown = (result["lipsync"] or {}).get("markdown")
        paths = result["summary"]["reports"]
        paths = paths.get("lipsync") or paths["oracle"]
    else:
        oracle = evaluate_oracle(args.videos, args.reference)
        out = args.out or args.videos
        if scorer is not None:
            result = evaluate_videos(args.videos, args.reference, scorer=scorer, out_dir=out,
                                     box=tuple(args.box) if args.box else None, vshift=args.vshift,
                                     image_metrics=False, stem="lipsync", oracle=oracle,
                                     title="Lip sync: dubbed clips")
            markdown, paths = result["markdown"], result["paths"]
        else:
            markdown, paths = None, write_report(out, [], {"title": "Dubbed clips against the oracle",
                                                           "videos": os.path.abspath(args.videos)},
                                                 stem="oracle", oracle=oracle)
    if markdown is None:
        with open(paths["markdown"], encoding="utf-8") as f:
            markdown = f.read()
    print(markdown)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    if args.oracle:
        return run_oracle(args)
    from ppgan.apps.evaluate import evaluate_videos

    result = evaluate_videos(args.videos, args.reference, scorer_cfg=scorer_config(args), out_dir=args.out,
                             box=tuple(args.box) if args.box else None, vshift=args.vshift,
                             image_metrics=not args.no_image_metrics)
    print(result["markdown"])
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
