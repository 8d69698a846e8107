"""What ``tools/main.py`` runs: a config file to a trained model, or to evaluation reports.

``--evaluate-only`` works in ``<run folder>/eval/<checkpoint name>/``: ``eval_metrics.json`` with
the model's validation metrics (``Trainer.evaluate``), its log and config. For a generator model
(``netG`` beside a frozen lip-sync expert) it also regenerates the config's test split and scores
lip sync with that expert (``ppgan.apps.evaluate.evaluate_generator_from_config``): the JSON /
markdown / PNG reports go to ``evaluation/`` there and their headline numbers into
eval_metrics.json under ``lipsync``. ``--resume`` continues a run with the config stored in its
checkpoint (``resumed_config``).
On a synthetic corpus the dubbed clips are also compared with the oracle (``lipsync.oracle``).
"""

import os

from ..utils import comm
from ..utils.errors import ConfigError
from ..utils.logger import get_logger
from . import checkpoint as ckpt_io
from .trainer import Trainer

# eval_metrics.json names of the three report rows, in ``ppgan.apps.evaluate.ROW_NAMES`` order.
LIPSYNC_ROW_KEYS = ("ground_truth", "generated", "shuffled_audio")


def run(config_file=None, overrides=(), resume=None, load=None, evaluate_only=False, seed=None,
        output_dir=None, device="auto", amp=False, max_clips=None):
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
            log, config, generator models' lip-sync reports), never over the run's own files.
        seed, output_dir: override the config's ``seed`` / ``output_dir``.
        device: 'auto' | 'cpu' | 'gpu'; amp: float16 mixed precision (GPU only).
        max_clips: with ``evaluate_only``, regenerate and score only the first N clips of the
            split (the lip-sync part's cost grows with the clips).
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
        extra = {"weights": resume or load, "split": trainer.eval_split()}
        # Regenerating videos is single-process work; the other ranks are done after evaluate().
        if is_generator_model(trainer.model) and comm.is_main_process():
            extra["lipsync"] = evaluate_lipsync(trainer, max_clips)
        trainer.write_metrics(os.path.join(trainer.output_dir, "eval_metrics.json"), extra)
        trainer.close()
        return trainer
    trainer.train()
    return trainer


def evaluation_folder(run_dir, weights):
    """``<run_dir>/eval/<weights file name without extension>`` (``initial`` without weights)."""
    name = os.path.splitext(os.path.basename(os.fspath(weights)))[0] if weights else "initial"
    return os.path.join(run_dir, "eval", name)


def resumed_config(state, checkpoint, config_file=None, overrides=()):
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


def changed_keys(old, new, skip=(), prefix=""):
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


def is_generator_model(model):
    """True for models with a generator ``netG`` and a frozen expert (Wav2Lip, Wav2Lip HQ)."""
    expert = getattr(model, "expert_name", None)
    return "netG" in model.nets and expert in model.nets and expert in model.frozen


def evaluate_lipsync(trainer, max_clips=None):
    """Score the trainer's generator on its ``dataset.test`` split (the first ``max_clips`` clips
    when given) with its own expert; log one line.

    Returns:
        The JSON-ready summary stored under ``lipsync`` in eval_metrics.json: ``clips``,
        ``rows`` {ground_truth, generated, shuffled_audio: {lse_d, lse_c, num_videos}},
        ``closer_to_ground_truth``, ``reconstruction_psnr`` / ``reconstruction_ssim`` (whole
        clips regenerated from their own audio, against the clips' frames), ``oracle`` (synthetic corpora: lower-half PSNR / SSIM and mouth-opening correlation
        of the dubbed clips against the oracle, with ``floor_`` / ``ceiling_`` rows; else None)
        and ``reports`` (paths of the lip-sync and reconstruction reports).
    """
    from ..apps.evaluate import evaluate_generator_from_config
    from ..metrics.report import json_safe

    model = trainer.model
    # The offset the weights' spec gives, as tools/wav2lip.py uses for the same file.
    offset = trainer.inference_spec()["mel_frame_offset"]
    result = evaluate_generator_from_config(trainer.cfg, model.net("netG"),
                                            model.net(model.expert_name),
                                            config_dir=trainer.config_dir, mel_frame_offset=offset,
                                            max_clips=max_clips)
    summary = result["summary"]
    rows = {key: {"lse_d": row["lse_d"], "lse_c": row["lse_c"], "num_videos": row["num_videos"]}
            for key, row in zip(LIPSYNC_ROW_KEYS, result["lipsync"]["rows"])}
    gap = summary["lipsync"]
    record = {"clips": summary["clips"], "rows": rows,
              "closer_to_ground_truth": gap["closer_to_ground_truth"] if gap else None,
              "reconstruction_psnr": summary["psnr"], "reconstruction_ssim": summary["ssim"],
              "oracle": summary["oracle"],
              "reports": summary["reports"]}
    get_logger().info(f"lip sync on {summary['clips']} clips of the '{trainer.eval_split()}' split: "
                      + format_lipsync(record))
    return json_safe(record)


def format_lipsync(record):
    """``LSE-D a / b / c, LSE-C a / b / c (ground truth / generated / shuffled audio);
    reconstruction PSNR, SSIM``."""
    from ..metrics.report import format_value

    lse = ", ".join(name + " " + " / ".join(format_value(record["rows"][row][key], "{:.3f}")
                                             for row in LIPSYNC_ROW_KEYS)
                    for name, key in (("LSE-D", "lse_d"), ("LSE-C", "lse_c")))
    text = (f"{lse} (ground truth / generated / shuffled audio); "
            f"reconstruction PSNR {format_value(record['reconstruction_psnr'], '{:.2f}')} dB, "
            f"SSIM {format_value(record['reconstruction_ssim'], '{:.4f}')}")
    if record.get("oracle"):
        text += "; " + format_oracle(record["oracle"])
    return text


def format_oracle(oracle):
    """``oracle: lower-half PSNR a / b / c, SSIM ..., opening corr. ... (generated / input / oracle)``."""
    from ..metrics.report import format_value

    parts = []
    for label, key, spec in (("lower-half PSNR", "lower_psnr", "{:.2f}"),
                             ("SSIM", "lower_ssim", "{:.4f}"),
                             ("opening corr.", "opening_corr", "{:.3f}")):
        parts.append(label + " " + " / ".join(format_value(oracle.get(prefix + key), spec)
                                              for prefix in ("", "floor_", "ceiling_")))
    return "oracle: " + ", ".join(parts) + " (generated / input unchanged / oracle)"
