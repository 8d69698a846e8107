"""Command-line options of ``Wav2LipPredictor``, shared by tools/wav2lip.py and
tools/wav2lip_stream.py so both tools take the same flags with the same meaning."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from ..inference.engine import PRECISIONS
from ..utils.background_writer import ENCODERS


def true_or_false(text: str) -> bool:
    """PaddleGAN's ``--static True`` / ``--static False`` (its bool() made 'False' true)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def add_predictor_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the predictor's options (everything but the face, audio and output) to ``parser``; returns it."""
    parser.add_argument("--checkpoint_path", default=None,
                        help="generator weights, training checkpoint or exported program; default: "
                             "PaddleGAN's wav2lip_hq.pdparams from $PPGAN_HOME, ~/.cache/ppgan or "
                             "~/.cache/paddle/hapi/weights (nothing is downloaded)")
    parser.add_argument("--static", type=true_or_false, nargs="?", const=True, default=False,
                        metavar="True|False",
                        help="use only the first frame of --face (bare flag = True)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate for a still --face (videos keep theirs); default: the "
                             "checkpoint's training fps (25 for PaddleGAN / original weights)")
    parser.add_argument("--pads", type=int, nargs=4, default=[0, 10, 0, 0],
                        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="pixels added around each detected face; default: 0 10 0 0")
    parser.add_argument("--face_det_batch_size", type=int, default=16,
                        help="frames per detector call (halves on out-of-memory); default: %(default)s")
    parser.add_argument("--wav2lip_batch_size", type=int, default=32,
                        help="frames per generator call (halves on out-of-memory); default: "
                             "%(default)s (the reference's 128 is no faster on CPU and holds 4x "
                             "the frames and activations)")
    parser.add_argument("--resize_factor", type=int, default=1,
                        help="divide the frame size by this integer first; default: %(default)s")
    parser.add_argument("--crop", type=int, nargs=4, default=[0, -1, 0, -1],
                        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="keep this region (after resize/rotate); -1 = to the edge")
    parser.add_argument("--box", type=int, nargs=4, default=[-1, -1, -1, -1],
                        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="fixed face box instead of detection; -1 -1 -1 -1 = detect")
    parser.add_argument("--rotate", action="store_true",
                        help="rotate frames 90 degrees clockwise (overrides a video's rotation "
                             "metadata, which is applied without this flag)")
    parser.add_argument("--nosmooth", action="store_true", help="do not smooth face boxes over time")
    parser.add_argument("--detect_every", type=int, default=2,
                        help="search faces in every k-th frame, interpolate between; default: %(default)s")
    parser.add_argument("--face_detector", choices=("haar", "s3fd", "sfd", "blazeface"), default=None,
                        help="sfd = s3fd (PaddleGAN's name); blazeface is refused; default: s3fd "
                             "when --face_detector_weights is given, else haar")
    parser.add_argument("--face_detector_weights", default=None,
                        help="S3FD weights (convert s3fd.pth with tools/convert_weights.py --arch "
                             "s3fd); default for s3fd: PaddleGAN's cached s3fd_paddle.pdparams")
    parser.add_argument("--face_enhancement", action="store_true",
                        help="restore each face region with GPEN (PaddleGAN's GPEN-512.pdparams)")
    parser.add_argument("--face_enhancement_weights", default=None,
                        help="GPEN weights; default: GPEN-512.pdparams from the folders "
                             "--checkpoint_path is looked up in")
    parser.add_argument("--no_face", choices=("interpolate", "keep", "error"), default="interpolate",
                        help="frames without a face: interpolate the box over gaps up to 1 s "
                             "(longer gaps stay unchanged), keep them unchanged, or fail")
    parser.add_argument("--device", default="cpu", help="cpu or gpu; default: %(default)s")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (PaddleGAN's flag; "
                                                             "the same as --device cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads; default: all cores")
    parser.add_argument("--blend", choices=("feather", "hard"), default="feather",
                        help="paste the mouth region with a soft mask, or the whole box (reference)")
    parser.add_argument("--engine", choices=("auto", "static", "dynamic"), default="auto",
                        help="auto: on CPU export the generator to an inference program run with "
                             "oneDNN (dynamic graph if that fails); default: %(default)s")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="arithmetic of the inference program: bf16 needs a CPU with native "
                             "bf16 (AVX-512 BF16 / AMX) and falls back to fp32 with one log line "
                             "otherwise; auto times each supported precision on the first frames "
                             "and keeps the fastest within the quality guard; default: %(default)s")
    parser.add_argument("--encoder", choices=ENCODERS, default="inline",
                        help="inline: encode H.264/AAC in this process; process: in a child "
                             "process while frames are generated (pays off only with cores the "
                             "generator leaves idle); default: %(default)s")
    return parser


def predictor_options(args: argparse.Namespace) -> Dict[str, Any]:
    """``Wav2LipPredictor`` keyword arguments from parsed ``add_predictor_arguments`` options."""
    return dict(
        checkpoint_path=args.checkpoint_path, static=args.static, fps=args.fps, pads=args.pads,
        face_det_batch_size=args.face_det_batch_size, wav2lip_batch_size=args.wav2lip_batch_size,
        resize_factor=args.resize_factor, crop=args.crop, box=args.box, rotate=args.rotate,
        nosmooth=args.nosmooth, detect_every=args.detect_every, face_detector=args.face_detector,
        face_detector_weights=args.face_detector_weights, no_face=args.no_face,
        device="cpu" if args.cpu else args.device, threads=args.threads, blend=args.blend,
        engine=args.engine, face_enhancement=args.face_enhancement,
        face_enhancement_weights=args.face_enhancement_weights, precision=args.precision,
        encoder=args.encoder)
