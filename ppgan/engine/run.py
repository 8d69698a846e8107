"""What ``tools/main.py`` runs: a config file to a trained model, or to evaluation reports.

``--evaluate-only`` works in ``<run folder>/eval/<checkpoint name>/``: ``eval_metrics.json`` with
the model's validation metrics (``Trainer.evaluate``), its log and config. When the model names
an offline evaluation (``ppgan.engine.evaluation``; the generator models name the lip-sync one of
``ppgan.apps``), it runs there too and its record joins eval_metrics.json under its key.
``--resume`` continues a run with the config stored in its checkpoint (``resumed_config``).
"""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..utils import comm
from ..utils.errors import ConfigError
from ..utils.logger import get_logger
from . import checkpoint as ckpt_io
from .evaluation import EvaluationRun, run_evaluator
from .trainer import Trainer


def run(config_file: Optional[str] = None, overrides: Sequence[str] = (),
        resume: Optional[str] = None, load: Optional[str] = None, evaluate_only: bool = False,
        seed: Optional[int] = None, output_dir: Optional[str] = None, device: str = "auto",
        amp: bool = False, max_clips: Optional[int] = None) -> Trainer:
    """Load the config, then train or evaluate.

    Args:
        config_file: YAML config; ``overrides`` are ``a.b.c=value`` strings. With ``resume``
            the run's stored config is used instead (``overrides`` on top; ``config_file`` is
            then optional and only resolves relative paths).
        resume: checkpoint (or run folder: its newest checkpoint) to continue from exactly;
            the run folder is the checkpoint's folder.
        load: weights to start from (our checkpoint, a PaddleGAN or converted file).
        evaluate_only: evaluate the (loaded) weights on ``dataset.test`` instead of training;
            everything goes to ``<run folder>/eval/<checkpoint name>/`` (eval_metrics.json,
            log, config, the reports of the model's offline evaluation), never over the run's
            own files.
        seed, output_dir: override the config's ``seed`` / ``output_dir``.
        device: 'auto' | 'cpu' | 'gpu'; amp: float16 mixed precision (GPU only).
        max_clips: with ``evaluate_only``, the offline evaluation scores only the first N clips
            of the split (the lip-sync one's cost grows with the clips).
    Returns:
        The trainer (for tests and the Python API).
    """
    from ..utils.config import load_config
    if resume and load:
        raise ConfigError("--resume and --load exclude each other: --resume continues a run, "
                          "--load only initialises weights")
    state = None
    if resume:
        resume = ckpt_io.resolve_resume_path(resume)
        state = ckpt_io.load_checkpoint(resume)
        cfg, config_file = resumed_config(state, resume, config_file, overrides)
    elif config_file is None:
        raise ConfigError("give a config with -c (or --resume a run folder to continue it)")
    else:
        cfg = load_config(config_file, overrides)
    if seed is not None:
        cfg.seed = int(seed)
    if output_dir:
        cfg.output_dir = output_dir
    if evaluate_only:
        # The run folder's config.yaml, logs and VisualDL file stay the run's own.
        cfg.output_dir = evaluation_folder(cfg.get("output_dir") or "output", resume or load)
        cfg.enable_visualdl = False
    trainer = Trainer(cfg, config_path=config_file, device=device, amp=amp)
    if resume:
        trainer.resume(resume, state)
    elif load:
        trainer.load(load)
    if evaluate_only:
        trainer.write_config()
        get_logger().info(f"evaluating {resume or load or 'the initial weights'}; results in "
                          f"{trainer.output_dir}")
        trainer.evaluate(progress=True)
        extra: Dict[str, Any] = {"weights": resume or load, "split": trainer.eval_split()}
        # Offline evaluations are single-process work; the other ranks are done after evaluate().
        if comm.is_main_process():
            found = run_evaluator(EvaluationRun(
                trainer.model, trainer.cfg, trainer.config_dir, trainer.output_dir,
                trainer.eval_split(), trainer.inference_spec(), max_clips))
            if found:
                extra[found[0]] = found[1]
        trainer.write_metrics(os.path.join(trainer.output_dir, "eval_metrics.json"), extra)
        trainer.close()
        return trainer
    trainer.train()
    return trainer


def evaluation_folder(run_dir: str, weights: Optional[str]) -> str:
    """``<run_dir>/eval/<weights file name without extension>`` (``initial`` without weights)."""
    name = os.path.splitext(os.path.basename(os.fspath(weights)))[0] if weights else "initial"
    return os.path.join(run_dir, "eval", name)


def resumed_config(state: Mapping[str, Any], checkpoint: str, config_file: Optional[str] = None,
                   overrides: Sequence[str] = ()) -> Tuple[Any, Optional[str]]:
    """The config a resume continues with: the checkpoint's own, ``overrides`` on top.

    The run folder (``output_dir``) is the checkpoint's folder. Keys that the overrides change
    are logged as a warning; so are keys where a given ``config_file`` differs from the stored
    config (those are not applied: ``-o`` changes a resumed run).

    Returns:
        (AttrDict config, the config file for resolving relative paths: ``config_file``, else
        the one the run was started from when it still exists, else None).
    """
    from ..utils.config import AttrDict, apply_override, load_config, to_plain

    stored = to_plain(state["config"])
    cfg = to_plain(state["config"])
    for text in overrides or ():
        apply_override(cfg, text)
    cfg["output_dir"] = os.path.dirname(os.path.abspath(checkpoint))
    logger = get_logger()
    changed = changed_keys(stored, cfg, skip=("output_dir",))
    if changed:
        logger.warning("resuming with a changed config: " + "; ".join(changed))
    if config_file:
        ignored = changed_keys(stored, to_plain(load_config(config_file)), skip=("output_dir",))
        if ignored:
            logger.warning(f"{config_file} differs from the run's stored config, which is used "
                           f"(change keys with -o): " + "; ".join(ignored))
    else:
        config_file = state.get("config_file")
        if not (config_file and os.path.isfile(config_file)):
            config_file = None
    return AttrDict(cfg), config_file


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], skip: Sequence[str] = (),
                 prefix: str = "") -> List[str]:
    """``["a.b: old -> new", ...]`` for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        if path in skip:
            continue
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, skip, prefix=path + ".")
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")
    return out
