"""The inference engine: export a network to a static program and run it with Paddle Inference.

On CPU, Paddle Inference with oneDNN runs our convolution nets several times faster than the
dynamic graph (benchmarks/BENCHMARKS.md), so everything that only runs networks forward - the
generator in the predictor, the LSE embeddings - goes through ``build_runner``:

    run = build_runner(layer, {"x": (1, 80, 16)}, engine="auto", what="sync scorer")
    out = run(x)                         # ndarrays in, (N, ...) float32 ndarray out

Policy (``engine``): "static" = exported program on CPU, failing loudly; "dynamic" = the Layer in
the dynamic graph; "auto" = static on CPU, dynamic elsewhere, and dynamic when the export fails -
that silent slowdown is logged once per component and reason.

``precision`` is the numeric format the static runner computes in: "fp32", or "bf16" through
oneDNN where the CPU computes bf16 natively (``ppgan.inference.precision``). A precision that is
not supported, or whose first run fails, falls back to fp32 with one log line; ``precision`` on
a runner says what actually runs. "auto" measures the supported precisions at the first call and
keeps the fastest within the quality guard (``ppgan.inference.auto_precision``; image outputs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..utils.atomic import fsync_folder, output_error, prepare_folder
from ..utils.errors import ConfigError, OutputError, WeightsError
from ..utils.logger import get_logger
from .auto_precision import AutoPrecisionRunner
from .precision import log_precision_fallback, precision_support
from .program_cache import cached_export, forget
from .program_files import INFO_SUFFIX, PARAMS_SUFFIX, PROGRAM_SUFFIX, InputShapes
from .rewrite import direct_convolutions

if TYPE_CHECKING:  # paddle is imported where it runs: importing this module stays cheap
    import paddle

ENGINES = ("auto", "static", "dynamic")
RUNNER_PRECISIONS = ("fp32", "bf16")  # what one program runs in
PRECISIONS = RUNNER_PRECISIONS + ("auto",)
# oneDNN caches primitives per input shape; a video yields at most a few batch sizes (full
# batches and the last one), so a small cap keeps memory bounded without recompiling.
ONEDNN_SHAPE_CACHE = 8

_fallbacks_logged: Set[str] = set()  # component names already warned about


def check_engine(engine: str, precision: str = "fp32") -> None:
    """Raise ``ConfigError`` for an unknown engine or precision name."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def failure_reason(exc: BaseException) -> str:
    """One short line saying why ``exc`` happened (Paddle's C++ errors span many lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:160]}" if lines else type(exc).__name__


def log_fallback(what: str, reason: str) -> None:
    """Warn that ``what`` runs in the slow dynamic graph because of ``reason``; once per
    component, as a scorer builds several runners and a tool may load several nets."""
    if what in _fallbacks_logged:
        return
    _fallbacks_logged.add(what)
    get_logger().warning("%s: static inference program unavailable (%s); using the dynamic graph, "
                         "which is several times slower on CPU", what, reason)


def export_program(layer: paddle.nn.Layer, path_prefix: str, inputs: InputShapes,
                   info: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """Save ``layer`` (put in eval mode) as ``<prefix>.json`` + ``.pdiparams`` + ``.info.json``.

    Args:
        layer: a ``paddle.nn.Layer`` whose ``forward`` takes the inputs in ``inputs``' order.
        path_prefix: output path without suffix; its folder is created.
        inputs: ordered ``{name: per-sample shape}``; the batch dimension is dynamic.
        info: JSON-serialisable dict stored beside the program (``read_program_info``).
    Returns:
        (program path, parameters path). Files are written in a staging folder beside the target
        and moved into place, so a failed export leaves nothing behind.
    """
    import paddle

    layer.eval()
    spec = [paddle.static.InputSpec([None, *shape], "float32", name) for name, shape in inputs.items()]
    params = path_prefix + PARAMS_SUFFIX
    folder = prepare_folder(params)
    try:
        staging = tempfile.mkdtemp(dir=folder, prefix=".export-")
    except OSError as exc:
        raise output_error(params, exc) from None
    try:
        # Stride-1 transposed convs saved as the equivalent convs: oneDNN's bf16 path fails on them.
        with direct_convolutions(layer), _trace_records_dropped():
            paddle.jit.save(layer, os.path.join(staging, "model"), input_spec=spec)
            _check_staged_params(os.path.join(staging, "model"), layer, params)
        record = dict(info or {}, inputs={name: [int(v) for v in shape] for name, shape in inputs.items()})
        with open(os.path.join(staging, "model" + INFO_SUFFIX), "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
        for name in os.listdir(staging):
            _fsync_file(os.path.join(staging, name))
        for name in os.listdir(staging):
            if name.startswith("model."):
                os.replace(os.path.join(staging, name), path_prefix + name[len("model"):])
        fsync_folder(folder)
    except OSError as exc:
        raise output_error(params, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path_prefix + PROGRAM_SUFFIX, params


@contextlib.contextmanager
def _trace_records_dropped() -> Iterator[None]:
    """Within the block, a failed trace leaves nothing in Paddle's global tracing records.

    Paddle 3.3.1 records each traced program's tensor -> Value map under ``id(program)`` and
    ``id(tensor)`` and forgets it only when the trace succeeds. After a failed export (the "auto"
    engine then falls back to the dynamic graph) the stale map stays; once a later program and
    tensor reuse those addresses, the next export reads a Value of a destroyed program and the
    process dies with a segmentation fault in ``paddle.jit.save``. Entries added during the
    block are removed at its end (a successful trace has removed its own already).
    """
    from paddle.jit.dy2static import parameter_recorder

    records = [getattr(parameter_recorder, name, None)
               for name in ("_global_parameter_recorder", "_global_inplace_map")]
    tables = [table for record in records for table in (getattr(record, "params_dict", None),
                                                        getattr(record, "tensor2value", None))
              if isinstance(table, dict)]
    before = [set(table) for table in tables]
    try:
        yield
    finally:
        for table, keys in zip(tables, before):
            for key in set(table) - keys:
                table.pop(key, None)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _check_staged_params(staged_prefix: str, layer: paddle.nn.Layer, target: str) -> None:
    """Refuse a parameters file smaller than the tensors it must hold.

    Paddle's writer does not report a full disk: it leaves a short file. The file holds the bytes
    of every persistable tensor the program uses, plus headers, so their total is a lower bound
    of its size. Only tensors the saved program names count: a layer may own weights its traced
    forward never touches (the still-face generator skips the face encoder).
    """
    with open(staged_prefix + PROGRAM_SUFFIX, "rb") as handle:
        program = handle.read()
    needed = sum(int(np.prod(value.shape)) * value.element_size()
                 for value in layer.state_dict().values() if value.name.encode() in program)
    staged = staged_prefix + PARAMS_SUFFIX
    written = os.path.getsize(staged) if os.path.isfile(staged) else 0
    if written < needed:
        raise OutputError(f"cannot write {target}: only {written} of at least {needed} bytes "
                          f"were written (is the disk full?); nothing was replaced")


def read_program_info(path_prefix: str) -> Dict[str, Any]:
    """The dict ``export_program`` stored beside a program; {} for programs exported without it.

    Raises:
        WeightsError: the file exists but is not a JSON object.
    """
    path = path_prefix + INFO_SUFFIX
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as handle:
            info = json.load(handle)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path}: {exc}; export the program again") from None
    if not isinstance(info, dict):
        raise WeightsError(f"{path} is not a JSON object; export the program again")
    return info


class StaticRunner:
    """An exported program run by ``paddle.inference`` on CPU.

    Args:
        path_prefix: what ``export_program`` was given.
        threads: math-library threads. Default: all cores (``os.cpu_count()``).
        use_onednn: oneDNN kernels (much faster on x86). Default: True.
        precision: "fp32" or "bf16" (see the module doc; "auto" is ``load_static``'s).
        what: the component's name, for messages.
    Attributes:
        input_names: the program's inputs, in the order ``__call__`` takes them.
        input_shapes: ``{name: per-sample shape}`` from the program's info file ({} without one).
        info: that file's whole dict (``read_program_info``).
    """

    def __init__(self, path_prefix: str, threads: Optional[int] = None, use_onednn: bool = True,
                 precision: str = "fp32", what: str = "program") -> None:
        check_engine("static", precision)
        if precision not in RUNNER_PRECISIONS:
            raise ConfigError(f"a StaticRunner computes in one of {', '.join(RUNNER_PRECISIONS)}, "
                              f"got {precision!r}; load_static handles 'auto'")
        program, params = path_prefix + PROGRAM_SUFFIX, path_prefix + PARAMS_SUFFIX
        for path in (program, params):
            if not os.path.isfile(path):
                raise WeightsError(f"exported {what} file not found: {path}; create it with "
                                   f"tools/export_model.py --output {path_prefix}")
        self.what, self._files, self._threads, self._use_onednn = what, (program, params), threads, use_onednn
        if precision != "fp32":
            supported, reason = precision_support(precision)
            if not supported or not use_onednn:
                log_precision_fallback(what, precision, reason or "needs oneDNN")
                precision = "fp32"
        self.precision = precision
        self._verified = precision == "fp32"  # a reduced precision is confirmed by its first run
        self._create(path_prefix)
        self.input_names = list(self.predictor.get_input_names())
        self.info = read_program_info(path_prefix)
        self.input_shapes = {name: tuple(shape) for name, shape in self.info.get("inputs", {}).items()}

    def _create(self, path_prefix: Optional[str] = None) -> None:
        import paddle

        config = paddle.inference.Config(*self._files)
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(self._threads or os.cpu_count() or 1))
        if self._use_onednn:
            config.enable_onednn()
            config.set_onednn_cache_capacity(ONEDNN_SHAPE_CACHE)
            if self.precision == "bf16":
                config.enable_onednn_bfloat16()
        else:
            config.disable_onednn()
        config.disable_glog_info()
        try:
            self.predictor = paddle.inference.create_predictor(config)
        except Exception as exc:  # the C++ side raises generic errors for unreadable programs
            if self.precision != "fp32":
                return self._fall_back(exc)
            raise WeightsError(f"cannot load the exported {self.what} {path_prefix or self._files[0]}: "
                               f"{failure_reason(exc)}; export it again") from None
        self._inputs = [self.predictor.get_input_handle(name) for name in self.predictor.get_input_names()]
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        return None

    def _fall_back(self, exc: BaseException) -> None:
        """A reduced precision failed in Paddle: say so once and rebuild in fp32."""
        log_precision_fallback(self.what, self.precision, failure_reason(exc))
        self.precision, self._verified = "fp32", True
        self._create()

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        """Run the program on float32 arrays in ``input_names`` order; returns the first output."""
        if len(arrays) != len(self._inputs):
            raise ValueError(f"the program takes {len(self._inputs)} inputs "
                             f"({', '.join(self.input_names)}), got {len(arrays)}")
        try:
            return self._run(arrays)
        except Exception as exc:  # noqa: BLE001 - Paddle's bf16 passes fail as bare std::exception
            if self._verified:
                raise
            self._fall_back(exc)
            return self._run(arrays)
        finally:
            self._verified = True

    def _run(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        for handle, array in zip(self._inputs, arrays):
            array = np.ascontiguousarray(array, dtype=np.float32)
            handle.reshape(array.shape)
            handle.copy_from_cpu(array)
        self.predictor.run()
        return self._output.copy_to_cpu()


class DynamicRunner:
    """A ``paddle.nn.Layer`` run in eval mode without gradients: ndarrays in, ndarray out.

    The layer's train / eval mode is restored afterwards (the trainer evaluates its own nets).
    """

    precision = "fp32"

    def __init__(self, layer: paddle.nn.Layer) -> None:
        self.layer = layer

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        import paddle

        was_training = self.layer.training
        self.layer.eval()
        try:
            with paddle.no_grad():
                return self.layer(*[paddle.to_tensor(np.asarray(a, np.float32)) for a in arrays]).numpy()
        finally:
            if was_training:
                self.layer.train()


# A loaded program: one precision, or the measured choice among them.
StaticProgram = Union[StaticRunner, AutoPrecisionRunner]


def load_static(path_prefix: str, threads: Optional[int] = None, precision: str = "fp32",
                what: str = "program") -> StaticProgram:
    """A ``StaticRunner`` of the exported program in ``precision``, or for "auto" an
    ``AutoPrecisionRunner`` over every precision this machine supports."""
    if precision == "auto":
        return AutoPrecisionRunner(lambda chosen: StaticRunner(path_prefix, threads=threads, precision=chosen,
                                                               what=what), what)
    return StaticRunner(path_prefix, threads=threads, precision=precision, what=what)


def compile_static(layer: paddle.nn.Layer, inputs: InputShapes, threads: Optional[int] = None,
                   precision: str = "fp32", what: str = "program", cache: bool = False) -> StaticProgram:
    """Export ``layer`` to a program and load it in a ``StaticRunner``.

    With ``cache`` the program comes from the disk cache of ``program_cache`` (exported into it
    on a miss); otherwise, or when the cache cannot be used, it is exported to a temporary folder
    whose files are removed at once (the runner holds the program in memory).
    """
    if cache:
        prefix = None
        try:
            prefix = cached_export(layer, inputs, export_program)
            if prefix is not None:
                return load_static(prefix, threads, precision, what)
        except (OutputError, OSError) as exc:
            get_logger().warning("%s: program cache unusable (%s); exporting to a temporary folder",
                                 what, failure_reason(exc))
        except Exception as exc:  # noqa: BLE001 - a damaged entry: Paddle's loader raises many types
            if prefix is None:
                raise  # the export itself failed: as without the cache
            get_logger().warning("%s: cached program %s unreadable (%s); exporting it again",
                                 what, prefix, failure_reason(exc))
            forget(prefix)
    folder = tempfile.mkdtemp(prefix="ppgan-inference-")
    try:
        export_program(layer, os.path.join(folder, "model"), inputs)
        return load_static(os.path.join(folder, "model"), threads, precision, what)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _on_cpu() -> bool:
    import paddle

    return paddle.get_device().startswith("cpu")


# What ``build_runner`` returns: ``run(*float32 arrays) -> first output array``.
Runner = Union[StaticRunner, AutoPrecisionRunner, DynamicRunner]


def build_runner(layer: paddle.nn.Layer, inputs: InputShapes, engine: str = "auto",
                 threads: Optional[int] = None, precision: str = "fp32", what: str = "network",
                 cache: bool = False) -> Runner:
    """A callable ``(*ndarrays) -> ndarray`` running ``layer`` by the engine policy.

    Args:
        layer: the ``paddle.nn.Layer``; its forward takes the inputs in ``inputs``' order.
        inputs: ordered ``{name: per-sample shape}`` (batch dimension dynamic).
        engine: "auto" | "static" | "dynamic" (module doc).
        threads: CPU threads of the static runner (default: all cores); the dynamic graph's
            thread count is left as Paddle set it.
        precision: "fp32", "bf16" or "auto" (module doc).
        what: the component's name for the fall-back warning.
        cache: reuse the program exported for the same weights by an earlier run
            (``ppgan.inference.program_cache``).
    Raises:
        ConfigError: unknown engine / precision.
        any export error, with ``engine="static"``.
    """
    check_engine(engine, precision)
    if engine == "dynamic" or (engine == "auto" and not _on_cpu()):
        return DynamicRunner(layer)
    try:
        return compile_static(layer, inputs, threads, precision, what, cache)
    except Exception as exc:  # noqa: BLE001 - Paddle's export raises many unrelated types
        if engine == "static":
            raise
        log_fallback(what, failure_reason(exc))
        return DynamicRunner(layer)


class CompileOnFirstUse:
    """``build_runner`` deferred to the first call.

    Exporting takes seconds, so a tool that must first decode and check its inputs waits until
    data is actually ready: bad input fails fast. ``engine`` tells which one ran ("static" /
    "dynamic"; None before the first call).
    """

    def __init__(self, layer: paddle.nn.Layer, inputs: InputShapes, engine: str = "auto",
                 threads: Optional[int] = None, precision: str = "fp32", what: str = "network",
                 cache: bool = False) -> None:
        check_engine(engine, precision)
        self.layer, self.inputs, self.requested, self.cache = layer, inputs, engine, cache
        self.threads, self.requested_precision, self.what = threads, precision, what
        self.engine: Optional[str] = None
        self._run: Optional[Runner] = None

    @property
    def precision(self) -> str:
        """What the runner computes in; the requested precision before the first call."""
        return self.requested_precision if self._run is None else self._run.precision

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        if self._run is None:
            self._run = build_runner(self.layer, self.inputs, self.requested, self.threads,
                                     self.requested_precision, self.what, self.cache)
            self.engine = "dynamic" if isinstance(self._run, DynamicRunner) else "static"
        return self._run(*arrays)
