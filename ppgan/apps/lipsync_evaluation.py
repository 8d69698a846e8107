"""The lip-sync evaluation of a generator model, as ``--evaluate-only`` runs it.

``Wav2LipModel`` (and its HQ variant) name it (``evaluator = "LipSyncEvaluation"``); the trainer
calls it through ``ppgan.engine.evaluation`` after the validation metrics. It regenerates the
config's ``dataset.test`` split with the generator ``netG`` and scores lip sync with the model's
own frozen expert (``evaluate_generator_from_config``): the JSON / markdown / PNG reports go to
``<output_dir>/evaluation/`` and their headline numbers into eval_metrics.json under
``lipsync``. On a synthetic corpus the dubbed clips are also compared with the oracle.
"""

import os
from typing import Any, Dict, Mapping

from ..metrics.report import format_value, json_safe
from ..models.builder import EVALUATORS
from ..utils.logger import get_logger
from .evaluate import evaluate_generator_from_config

# eval_metrics.json names of the three report rows, in ``ppgan.apps.evaluate.ROW_NAMES`` order.
LIPSYNC_ROW_KEYS = ("ground_truth", "generated", "shuffled_audio")


@EVALUATORS.register()
class LipSyncEvaluation:
    """Score a generator model's ``netG`` on its test split with its frozen expert."""

    key = "lipsync"

    def __call__(self, run: Any) -> Dict[str, Any]:
        """Regenerate and score ``run.split`` (the first ``run.max_clips`` clips when given);
        log one line.

        Args:
            run: a ``ppgan.engine.evaluation.EvaluationRun`` of a model with ``netG`` and
                ``expert_name``.
        Returns:
            The JSON-ready summary stored under ``lipsync`` in eval_metrics.json: ``clips``,
            ``rows`` {ground_truth, generated, shuffled_audio: {lse_d, lse_c, num_videos}},
            ``closer_to_ground_truth``, ``reconstruction_psnr`` / ``reconstruction_ssim``
            (whole clips regenerated from their own audio, against the clips' frames),
            ``oracle`` (synthetic corpora: lower-half PSNR / SSIM and mouth-opening correlation
            of the dubbed clips against the oracle, with ``floor_`` / ``ceiling_`` rows; else
            None) and ``reports`` (paths of the lip-sync and reconstruction reports).
        """
        model = run.model
        # The offset the weights' spec gives, as tools/wav2lip.py uses for the same file.
        result = evaluate_generator_from_config(
            run.cfg, model.net("netG"), model.net(model.expert_name), config_dir=run.config_dir,
            out_dir=os.path.join(run.output_dir, "evaluation"),
            mel_frame_offset=run.inference_spec["mel_frame_offset"], max_clips=run.max_clips)
        summary = result["summary"]
        rows = {key: {"lse_d": row["lse_d"], "lse_c": row["lse_c"],
                      "num_videos": row["num_videos"]}
                for key, row in zip(LIPSYNC_ROW_KEYS, result["lipsync"]["rows"])}
        gap = summary["lipsync"]
        record = {"clips": summary["clips"], "rows": rows,
                  "closer_to_ground_truth": gap["closer_to_ground_truth"] if gap else None,
                  "reconstruction_psnr": summary["psnr"], "reconstruction_ssim": summary["ssim"],
                  "oracle": summary["oracle"],
                  "reports": summary["reports"]}
        get_logger().info(f"lip sync on {summary['clips']} clips of the '{run.split}' split: "
                          + format_lipsync(record))
        return json_safe(record)


def format_lipsync(record: Mapping[str, Any]) -> str:
    """``LSE-D a / b / c, LSE-C a / b / c (ground truth / generated / shuffled audio);
    reconstruction PSNR, SSIM``."""
    lse = ", ".join(name + " " + " / ".join(format_value(record["rows"][row][key], "{:.3f}")
                                             for row in LIPSYNC_ROW_KEYS)
                    for name, key in (("LSE-D", "lse_d"), ("LSE-C", "lse_c")))
    text = (f"{lse} (ground truth / generated / shuffled audio); "
            f"reconstruction PSNR {format_value(record['reconstruction_psnr'], '{:.2f}')} dB, "
            f"SSIM {format_value(record['reconstruction_ssim'], '{:.4f}')}")
    if record.get("oracle"):
        text += "; " + format_oracle(record["oracle"])
    return text


def format_oracle(oracle: Mapping[str, Any]) -> str:
    """``oracle: lower-half PSNR a / b / c, SSIM ..., opening corr. ... (generated / input / oracle)``."""
    parts = []
    for label, key, spec in (("lower-half PSNR", "lower_psnr", "{:.2f}"),
                             ("SSIM", "lower_ssim", "{:.4f}"),
                             ("opening corr.", "opening_corr", "{:.3f}")):
        parts.append(label + " " + " / ".join(format_value(oracle.get(prefix + key), spec)
                                              for prefix in ("", "floor_", "ceiling_")))
    return "oracle: " + ", ".join(parts) + " (generated / input unchanged / oracle)"
