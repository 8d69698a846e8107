"""Convert an original PyTorch Wav2Lip checkpoint to a Paddle ``.pdparams`` file (no torch needed).

    python tools/convert_weights.py --src wav2lip_gan.pth --arch wav2lip --out wav2lip_gan.pdparams
    python tools/convert_weights.py --src lipsync_expert.pth --arch syncnet --out syncnet.pdparams
    python tools/convert_weights.py --src visual_quality_disc.pth --arch disc --out disc.pdparams

The file is read with a restricted unpickler (nothing in it is executed) and the result is
checked against the Paddle network, so a checkpoint given the wrong --arch is refused.
"""

import argparse

from ppgan.utils.cli import run_main
from ppgan.apps.convert_weights import CONVERTERS, convert_file


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="PyTorch checkpoint (.pth / .pt / .tar)")
    parser.add_argument("--arch", required=True, help=" | ".join(CONVERTERS.names()))
    parser.add_argument("--out", required=True, help="output .pdparams file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    count = convert_file(args.src, args.arch, args.out)
    print(f"wrote {args.out}: {count} entries ({args.arch})")
    return 0


if __name__ == "__main__":
    run_main(main)
