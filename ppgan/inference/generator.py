"""The Wav2Lip generator on the inference engine: export, the exported-program runner, and the
engine policy for an in-memory generator.

    python tools/export_model.py --checkpoint wav2lip_hq.pdparams --output inference/wav2lip
    gen = StaticGenerator("inference/wav2lip")
    faces_out = gen(mels, faces)      # (N,1,80,16) + (N,6,S,S) float32 -> (N,3,S,S), S = img_size

Every generator callable here has an ``img_size`` attribute (the face size S it was built for),
so the predictor crops and pastes at the right size without being told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

import numpy as np

from ..data.contract import FACE_SIZE, MEL_STEP_SIZE
from ..utils.errors import WeightsError
from .engine import (CompileOnFirstUse, DynamicRunner, StaticProgram, StaticRunner, check_engine, export_program,
                     load_static)
from .spec import SPEC_KEY, check_spec, reference_spec, to_dict

if TYPE_CHECKING:
    import paddle

MEL_SHAPE = (1, 80, MEL_STEP_SIZE)


def generator_inputs(img_size: int = FACE_SIZE) -> Dict[str, Tuple[int, ...]]:
    """The generator's ordered input shapes ``{"mel": (1, 80, 16), "faces": (6, S, S)}``."""
    return {"mel": MEL_SHAPE, "faces": (6, int(img_size), int(img_size))}


def net_img_size(net: paddle.nn.Layer) -> int:
    """The face size a generator network was built for (96 for networks without the attribute)."""
    return int(getattr(net, "img_size", FACE_SIZE))


def export_generator(net: paddle.nn.Layer, path_prefix: str, spec: Optional[Dict[str, Any]] = None,
                     config: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """Save a Wav2Lip generator (put in eval mode) as ``<prefix>.json`` + ``.pdiparams``.

    The program takes ``mel`` (N, 1, 80, 16) and ``faces`` (N, 6, S, S) float32, N dynamic, and
    returns (N, 3, S, S); S is the network's ``img_size``. ``<prefix>.info.json`` keeps the
    inference spec (default: the reference spec at this face size) and the training config.
    A failed export leaves nothing behind.

    Returns:
        (program path, parameters path).
    """
    if spec is None:
        spec = dict(reference_spec(), img_size=net_img_size(net))
        spec["generator"] = dict(spec["generator"], img_size=net_img_size(net))
    info = {SPEC_KEY: to_dict(spec), "config": to_dict(config) if config else None}
    return export_program(net, path_prefix, generator_inputs(net_img_size(net)), info=info)


def check_generator_input(mels: np.ndarray, faces: np.ndarray, img_size: int) -> None:
    """Raise ``ValueError`` unless mels is (N, 1, 80, 16) and faces (N, 6, S, S) with one N."""
    if mels.ndim != 4 or mels.shape[1:] != MEL_SHAPE or faces.ndim != 4 or \
            faces.shape[1:] != (6, img_size, img_size) or len(mels) != len(faces):
        raise ValueError(f"expected mels (N,1,80,{MEL_STEP_SIZE}) and faces (N,6,{img_size},{img_size}) "
                         f"with the same N, got {mels.shape} and {faces.shape}")


class StaticGenerator:
    """Run an exported generator with Paddle Inference on CPU.

    Args:
        path_prefix: what ``export_generator`` was given.
        threads: math-library threads. Default: all cores.
        use_onednn: oneDNN kernels (much faster on x86). Default: True.
        precision: "fp32", "bf16" or "auto" (``ppgan.inference.engine``).
    Attributes:
        img_size: the face size S, read from the program's input shape.
        spec: the inference spec stored at export (the reference spec for older programs).
    """

    engine = "static"

    def __init__(self, path_prefix: str, threads: Optional[int] = None, use_onednn: bool = True,
                 precision: str = "fp32") -> None:
        if use_onednn:
            self.runner: StaticProgram = load_static(path_prefix, threads, precision, "generator")
        else:  # oneDNN is what runs reduced precisions: without it, fp32 (StaticRunner logs why)
            self.runner = StaticRunner(path_prefix, threads=threads, use_onednn=False,
                                       precision="fp32" if precision == "auto" else precision, what="generator")
        if sorted(self.runner.input_names) != ["faces", "mel"]:
            raise WeightsError(f"{path_prefix} is not a generator exported by export_generator "
                               f"(inputs {self.runner.input_names}, expected mel, faces)")
        self._order = [self.runner.input_names.index(name) for name in ("mel", "faces")]
        # Programs exported before the info file existed are all 96 px.
        self.img_size = int(self.runner.input_shapes.get("faces", (6, FACE_SIZE, FACE_SIZE))[-1])
        stored = self.runner.info.get(SPEC_KEY)
        self.spec = check_spec(stored, path_prefix) if stored else dict(reference_spec(), img_size=self.img_size)
        self.config = self.runner.info.get("config")

    @property
    def precision(self) -> str:
        """What the program computes in ("auto" until an auto runner's first call)."""
        return self.runner.precision

    def __call__(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Generate faces.

        Args:
            mels: (N, 1, 80, 16) float32 mel windows.
            faces: (N, 6, S, S) float32 masked target + reference, BGR in [0, 1].
        Returns:
            (N, 3, S, S) float32 ndarray in [0, 1].
        """
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        check_generator_input(mels, faces, self.img_size)
        arrays = [mels, faces]  # placed in the program's input order below
        arrays[self._order[0]], arrays[self._order[1]] = mels, faces
        return self.runner(*arrays)


class DynamicGenerator(DynamicRunner):
    """A generator ``paddle.nn.Layer`` in the dynamic graph: ``(mels, faces) -> ndarray``."""

    engine = "dynamic"
    spec: Dict[str, Any]  # the inference spec, set by whoever loaded the net (``load_generator``)

    def __init__(self, net: paddle.nn.Layer) -> None:
        super().__init__(net)
        self.net = net
        self.img_size = net_img_size(net)


class GeneratorOnFirstUse(CompileOnFirstUse):
    """A loaded generator network compiled to the inference engine at its first call
    (``CompileOnFirstUse``); ``engine`` says what ran."""

    spec: Dict[str, Any]  # the inference spec, set by whoever loaded the net (``load_generator``)

    def __init__(self, net: paddle.nn.Layer, engine: str = "auto", threads: Optional[int] = None,
                 precision: str = "fp32") -> None:
        # Cached on disk by weights: the CLI and streams then skip the export after the first run.
        super().__init__(net, generator_inputs(net_img_size(net)), engine, threads, precision,
                         what="generator", cache=True)
        self.net = net
        self.img_size = net_img_size(net)


# Every in-memory or exported generator callable: ``(mels, faces) -> faces`` with ``img_size``.
GeneratorRunner = Union[StaticGenerator, DynamicGenerator, GeneratorOnFirstUse]


def generator_runner(net: paddle.nn.Layer, engine: str = "auto", threads: Optional[int] = None,
                     precision: str = "fp32") -> Union[DynamicGenerator, GeneratorOnFirstUse]:
    """A generator callable with ``img_size`` for a loaded network, by the engine policy.

    "dynamic" runs the graph; "auto" / "static" export at the first call (see
    ``GeneratorOnFirstUse``; "auto" falls back to the graph with one warning).
    """
    check_engine(engine, precision)
    if engine == "dynamic":
        return DynamicGenerator(net)
    return GeneratorOnFirstUse(net, engine, threads, precision)
