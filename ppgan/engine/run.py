"""What ``tools/main.py`` runs: a config file to a trained model, or to evaluation reports.

``--evaluate-only`` writes ``<output_dir>/eval_metrics.json`` with the model's validation metrics
(``Trainer.evaluate``). For a generator model (``netG`` beside a frozen lip-sync expert) it also
regenerates the config's test split and scores lip sync with that expert
(``ppgan.apps.evaluate.evaluate_generator_from_config``): the JSON / markdown / PNG reports go to
``<output_dir>/evaluation`` and their headline numbers into eval_metrics.json under ``lipsync``.
On a synthetic corpus the dubbed clips are also compared with the oracle (``lipsync.oracle``).
"""

import os

from ..utils import comm
from ..utils.errors import ConfigError
from ..utils.logger import get_logger
from .trainer import Trainer

# eval_metrics.json names of the three report rows, in ``ppgan.apps.evaluate.ROW_NAMES`` order.
LIPSYNC_ROW_KEYS = ("ground_truth", "generated", "shuffled_audio")


def run(config_file, overrides=(), resume=None, load=None, evaluate_only=False, seed=None,
        output_dir=None, device="auto", amp=False, max_clips=None):
    """Load the config, then train or evaluate.

    Args:
        config_file: YAML config; ``overrides`` are ``a.b.c=value`` strings.
        resume: checkpoint (or folder of checkpoints) to continue from exactly.
        load: weights to start from (our checkpoint, a PaddleGAN or converted file).
        evaluate_only: evaluate the (loaded) weights on ``dataset.test`` and write
            ``<output_dir>/eval_metrics.json`` instead of training (generator models: plus the
            lip-sync reports, see the module docstring).
        seed, output_dir: override the config's ``seed`` / ``output_dir``.
        device: 'auto' | 'cpu' | 'gpu'; amp: float16 mixed precision (GPU only).
        max_clips: with ``evaluate_only``, regenerate and score only the first N clips of the
            split (the lip-sync part's cost grows with the clips).
    Returns:
        The trainer (for tests and the Python API).
    """
    from ..utils.config import load_config
    cfg = load_config(config_file, overrides)
    if seed is not None:
        cfg.seed = int(seed)
    if output_dir:
        cfg.output_dir = output_dir
    if resume and load:
        raise ConfigError("--resume and --load exclude each other: --resume continues a run, "
                          "--load only initialises weights")
    trainer = Trainer(cfg, config_path=config_file, device=device, amp=amp)
    if resume:
        trainer.resume(resume)
    elif load:
        trainer.load(load)
    if evaluate_only:
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
