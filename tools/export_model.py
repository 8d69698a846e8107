"""Export the Wav2Lip generator as a Paddle Inference program (``<output>.json`` + ``.pdiparams``).

    python tools/export_model.py --checkpoint wav2lip_hq.pdparams --output inference/wav2lip
    python tools/export_model.py --checkpoint output/demo/wav2lip/best.pdparams --output inference/demo

Accepts any weights file ``load_weights`` reads (PaddleGAN flat dicts, converted .pth, training
checkpoints). Our checkpoints say which generator they hold (width, face size: their inference
spec) and other files show their width in their tensors, so no architecture flag is needed;
``--width-mult`` or ``-c`` only override that. The program's ``.info.json`` keeps the spec and the
training config; the predictor loads the result with ``ppgan.inference.generator.StaticGenerator``.
"""

import argparse

from ppgan.utils.cli import run_main
from ppgan.utils.errors import ConfigError
from ppgan.apps.generator_loader import export_from_weights


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", "--load", dest="checkpoint", required=True,
                        help="weights file or training checkpoint")
    parser.add_argument("--net-name", default=None, help="net inside a multi-net checkpoint (default netG)")
    parser.add_argument("--width-mult", type=float, default=None,
                        help="build a generator of this width instead of the one the file describes")
    parser.add_argument("-c", "--config", default=None,
                        help="build this config's model.generator block instead of the file's own")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides a.b.c=value")
    parser.add_argument("--output", required=True, help="output path prefix")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.config and args.width_mult is not None:
        raise ConfigError("give either -c/--config or --width-mult, not both")
    program, params = export_from_weights(args.checkpoint, args.output, net_name=args.net_name,
                                          width_mult=args.width_mult, config=args.config,
                                          overrides=args.opt)
    print(f"wrote {program} and {params}")
    return 0


if __name__ == "__main__":
    run_main(main)
