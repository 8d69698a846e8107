"""Run PaddleGAN's own GPEN (the ``ppgan`` package from PyPI) as the yardstick of our GPEN.

PaddleGAN's package is also called ``ppgan``, so it cannot share a process with this project:
``run_reference`` starts a subprocess that imports only the modules GPEN needs from the copy that
``make install`` puts in ``.venv/paddlegan-ref`` (``pip install --no-deps --target``), without its
package ``__init__`` files, which would pull in PaddleGAN's pinned dependencies.

Used as a script by ``run_reference``: ``python paddlegan_reference.py REF_DIR JOB.npz OUT.npz``.
"""

import os
import subprocess
import sys

REF_DIR = os.path.join(sys.prefix, "paddlegan-ref")  # sys.prefix: the project's .venv


def reference_available():
    return os.path.isfile(os.path.join(REF_DIR, "ppgan", "models", "generators", "gpen.py"))


def run_reference(job, out, timeout=600):
    """Run one job in a fresh interpreter; ``job`` is an .npz path (see ``_main``), results go
    to ``out``. Returns the subprocess's CompletedProcess."""
    return subprocess.run([sys.executable, os.path.abspath(__file__), REF_DIR, str(job), str(out)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": ""})


def _import_reference(ref_dir):
    """Import PaddleGAN's GPEN and FaceEnhancement modules through empty stand-in packages."""
    import types

    root = os.path.join(ref_dir, "ppgan")
    packages = {}
    for name in ("ppgan", "ppgan.utils", "ppgan.modules", "ppgan.models", "ppgan.models.generators",
                 "ppgan.models.discriminators", "ppgan.faceutils", "ppgan.faceutils.face_detection",
                 "ppgan.faceutils.face_detection.detection",
                 "ppgan.faceutils.face_detection.detection.blazeface",
                 "ppgan.faceutils.face_enhancement"):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, *name.split(".")[1:])]
        sys.modules[name] = packages[name] = module
    import importlib

    styleganv2 = importlib.import_module("ppgan.models.generators.generator_styleganv2")
    packages["ppgan.models.generators"].StyleGANv2Generator = styleganv2.StyleGANv2Generator
    gpen = importlib.import_module("ppgan.models.generators.gpen")
    packages["ppgan.models.generators"].GPEN = gpen.GPEN
    enhance = importlib.import_module("ppgan.faceutils.face_enhancement.face_enhance")
    return gpen.GPEN, enhance.FaceEnhancement


def stand_in_restore(faces):
    """The stand-in network: (N, 3, S, S) in [-1, 1] -> tanh(1.5 * channels reversed)."""
    import paddle

    return paddle.tanh(1.5 * paddle.flip(faces, [1]))


def _stand_in_class():
    import paddle

    class StandInGPEN(paddle.nn.Layer):
        def __init__(self, **config):
            super().__init__()

        def forward(self, faces):
            return stand_in_restore(faces), None

    return StandInGPEN


def _main(ref_dir, job_path, out_path):
    """Jobs (keys of the .npz), given ``weights`` = path of a Paddle GPEN state dict:
    ``config`` = [size, style_dim, n_mlp, channel_multiplier] and ``faces`` (N, 3, S, S) in
    [-1, 1] -> ``keys`` (its state dict's "name:shape") and ``restored``; ``images``
    (N, 3, 512, 512) RGB 0..255 -> ``enhanced`` and ``mask`` through FaceEnhancement (512 only),
    with ``stand_in`` set: its network replaced by ``stand_in_restore``."""
    import numpy as np
    import paddle

    global StandInGPEN
    StandInGPEN = _stand_in_class()
    GPEN, FaceEnhancement = _import_reference(ref_dir)
    job = np.load(job_path)
    results = {}
    if "faces" in job:
        size, style_dim, n_mlp, multiplier = (int(v) for v in job["config"])
        net = GPEN(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier)
        results["keys"] = np.array(sorted(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items()))
        missing, unexpected = net.set_state_dict(paddle.load(str(job["weights"])))
        if missing or unexpected:
            raise SystemExit(f"reference GPEN does not take the weights: {missing} {unexpected}")
        net.eval()
        with paddle.no_grad():
            results["restored"] = net(paddle.to_tensor(job["faces"]))[0].numpy()
    if "images" in job:
        if "stand_in" in job:
            # A fixed parameter-free network in GPEN's place: checks the enhancer's own steps.
            sys.modules[FaceEnhancement.__module__].GPEN = StandInGPEN
            sys.modules[FaceEnhancement.__module__].paddle.load = lambda path: {}
        enhancer = FaceEnhancement(path_to_enhance=str(job["weights"]), batch_size=len(job["images"]))
        results["enhanced"] = np.asarray(enhancer.enhance_from_batch(
            paddle.to_tensor(job["images"].astype(np.float32))))
        results["mask"] = enhancer.mask[0, :, :, 0]
    np.savez(out_path, **results)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
