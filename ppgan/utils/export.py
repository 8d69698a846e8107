"""Export the generator as a static inference program and run it with Paddle Inference.

On CPU the inference engine with oneDNN is several times faster than dynamic-graph Paddle
(see benchmarks/BENCHMARKS.md), so the predictor runs the generator through ``StaticGenerator``.

    python tools/export_model.py --checkpoint wav2lip_hq.pdparams --output inference/wav2lip
    gen = StaticGenerator("inference/wav2lip")
    faces_out = gen(mels, faces)      # (N,1,80,16) + (N,6,96,96) float32 -> (N,3,96,96)
"""

import glob
import os
import shutil
import tempfile

import numpy as np
import paddle

from .errors import ConfigError, WeightsError
from .weights import load_weights

PROGRAM_SUFFIX = ".json"      # what paddle.jit.save writes in Paddle 3.x (PIR programs)
PARAMS_SUFFIX = ".pdiparams"
FACE_SIZE = 96
# oneDNN caches primitives per input shape; a video yields at most a few batch sizes (full
# batches and the last one), so a small cap keeps memory bounded without recompiling.
_ONEDNN_SHAPE_CACHE = 8


def export_generator(net, path_prefix):
    """Save ``net`` (a Wav2Lip generator, put in eval mode) as ``<prefix>.json`` + ``.pdiparams``.

    The program takes ``mel`` (N, 1, 80, 16) and ``faces`` (N, 6, 96, 96) float32, N dynamic,
    and returns (N, 3, 96, 96). Files are written in a temporary folder beside the target and
    moved into place, so a failed export leaves nothing behind.

    Returns:
        (program path, parameters path).
    """
    net.eval()
    spec = [paddle.static.InputSpec([None, 1, 80, 16], "float32", "mel"),
            paddle.static.InputSpec([None, 6, FACE_SIZE, FACE_SIZE], "float32", "faces")]
    folder = os.path.dirname(os.path.abspath(path_prefix))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(dir=folder, prefix=".export-")
    try:
        paddle.jit.save(net, os.path.join(staging, "model"), input_spec=spec)
        for staged in glob.glob(os.path.join(staging, "model.*")):
            os.replace(staged, path_prefix + os.path.basename(staged)[len("model"):])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path_prefix + PROGRAM_SUFFIX, path_prefix + PARAMS_SUFFIX


def build_export_generator(width_mult=1.0, config=None, overrides=()):
    """The generator to export: from a config's ``model.generator`` block, else ``Wav2Lip``."""
    from ..models.builder import build_generator  # lazy: keeps ppgan.utils free of model imports
    if config is None:
        return build_generator({"name": "Wav2Lip", "width_mult": width_mult})
    from .config import load_config
    cfg = load_config(config, overrides)
    if "generator" not in cfg.get("model", {}):
        raise ConfigError(f"{config} has no model.generator block to export")
    return build_generator(cfg.model.generator)


def export_from_weights(weights, path_prefix, net_name=None, width_mult=1.0, config=None,
                        overrides=()):
    """Build the generator, load ``weights`` strictly (any supported file) and export it.

    Returns:
        (program path, parameters path).
    """
    net = build_export_generator(width_mult, config, overrides)
    load_weights(net, weights, net_name=net_name)
    return export_generator(net, path_prefix)


class StaticGenerator:
    """Run an exported generator with ``paddle.inference`` on CPU.

    Args:
        path_prefix: what ``export_generator`` was given.
        threads: math-library threads. Default: all cores (``os.cpu_count()``).
        use_onednn: use oneDNN kernels (much faster on x86). Default: True.
    """

    def __init__(self, path_prefix, threads=None, use_onednn=True):
        program, params = path_prefix + PROGRAM_SUFFIX, path_prefix + PARAMS_SUFFIX
        for path in (program, params):
            if not os.path.isfile(path):
                raise WeightsError(f"exported generator file not found: {path}; create it "
                                   f"with tools/export_model.py --output {path_prefix}")
        config = paddle.inference.Config(program, params)
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
        if use_onednn:
            config.enable_onednn()
            config.set_onednn_cache_capacity(_ONEDNN_SHAPE_CACHE)
        else:
            config.disable_onednn()
        config.disable_glog_info()
        try:
            self.predictor = paddle.inference.create_predictor(config)
        except Exception as exc:  # the C++ side raises generic errors for unreadable programs
            raise WeightsError(f"cannot load the exported generator {path_prefix}: "
                               f"{str(exc).strip().splitlines()[0][:160]}; export it again") from None
        if sorted(self.predictor.get_input_names()) != ["faces", "mel"]:
            raise WeightsError(f"{program} is not a generator exported by export_generator "
                               f"(inputs {self.predictor.get_input_names()}, expected mel, faces)")
        self.output_name = self.predictor.get_output_names()[0]

    def __call__(self, mels, faces):
        """Generate faces.

        Args:
            mels: (N, 1, 80, 16) float32 mel windows.
            faces: (N, 6, 96, 96) float32 masked target + reference, BGR in [0, 1].
        Returns:
            (N, 3, 96, 96) float32 ndarray in [0, 1].
        """
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        if mels.ndim != 4 or mels.shape[1:] != (1, 80, 16) or faces.ndim != 4 or \
                faces.shape[1:] != (6, FACE_SIZE, FACE_SIZE) or len(mels) != len(faces):
            raise ValueError(f"expected mels (N,1,80,16) and faces (N,6,{FACE_SIZE},{FACE_SIZE}) "
                             f"with the same N, got {mels.shape} and {faces.shape}")
        for name, array in (("mel", mels), ("faces", faces)):
            handle = self.predictor.get_input_handle(name)
            handle.reshape(array.shape)
            handle.copy_from_cpu(array)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()
