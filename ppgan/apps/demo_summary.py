"""The demo's summary: which targets its run met, and the printed / written summary.md.

Targets (issue 12), on the held-out test clips dubbed with another clip's audio:

* the training expert's held-out sync accuracy >= 90 %;
* lower-half PSNR against the oracle >= 27 dB;
* mouth-opening correlation with the oracle >= 0.85;
* the independent judge's LSE-D of the generated videos closer to ground truth than to the
  shuffled-audio floor.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ..metrics.report import ORACLE_COLUMNS, ORACLE_TITLE, format_value, markdown_table

EXPERT_TARGET = 0.90
LOWER_PSNR_TARGET = 27.0
OPENING_CORR_TARGET = 0.85


def judge_summary(rows: Sequence[Mapping[str, Any]], accuracy: Optional[float]) -> Dict[str, Any]:
    """The judge's LSE rows (ground truth, generated, floor) as the summary's ``judge`` keys.

    Returns:
        dict: lse_d / lse_c of the generated row, ``*_ground_truth`` and ``*_floor`` beside them,
        closer_to_ground_truth, and the judge's held-out ``accuracy``.
    """
    from .evaluate import lse_gap_summary

    gt, gen, floor = rows[:3]
    gap = lse_gap_summary(rows)
    return {"lse_d": gen["lse_d"], "lse_d_ground_truth": gt["lse_d"], "lse_d_floor": floor["lse_d"],
            "lse_c": gen["lse_c"], "lse_c_ground_truth": gt["lse_c"], "lse_c_floor": floor["lse_c"],
            "closer_to_ground_truth": gap["closer_to_ground_truth"] if gap else None,
            "accuracy": accuracy}


def _at_least(value: Optional[float], target: float) -> bool:
    return value is not None and value >= target


def evaluate_targets(summary: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """{name: {value, target, met}} for every target; a missing value is not met."""
    oracle = summary.get("oracle") or {}
    judge = summary.get("judge") or {}
    closer = judge.get("closer_to_ground_truth")
    return {
        "expert_accuracy": {"value": summary.get("expert_accuracy"), "target": f">= {EXPERT_TARGET}",
                            "met": _at_least(summary.get("expert_accuracy"), EXPERT_TARGET)},
        "oracle.lower_psnr": {"value": oracle.get("lower_psnr"), "target": f">= {LOWER_PSNR_TARGET}",
                              "met": _at_least(oracle.get("lower_psnr"), LOWER_PSNR_TARGET)},
        "oracle.opening_corr": {"value": oracle.get("opening_corr"),
                                "target": f">= {OPENING_CORR_TARGET}",
                                "met": _at_least(oracle.get("opening_corr"), OPENING_CORR_TARGET)},
        "judge.lse_d": {"value": judge.get("lse_d"),
                        "target": "closer to judge.lse_d_ground_truth than to judge.lse_d_floor",
                        "met": bool(closer)},
    }


def _met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """summary.md: stage times, the targets, the headline numbers, the report tables, outputs."""
    lines = ["## Demo summary", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in summary["seconds"].items()]
    lines += [f"| **total** | **{summary['total_seconds']:.0f}** |", ""]
    targets = summary["targets"]
    acc = summary["expert_accuracy"]
    lines.append(f"- expert accuracy on held-out clips: {acc:.1%} (target >= {EXPERT_TARGET:.0%}: "
                 f"{_met(targets['expert_accuracy']['met'])})")
    if summary.get("expert_pair_accuracy") is not None:
        lines.append(f"- expert accuracy on held-out in-sync / off-sync window pairs: "
                     f"{summary['expert_pair_accuracy']:.1%}")
    gap = summary["lipsync_gap"]
    if gap:
        lines.append(f"- generated LSE-D {gap['generated']:.3f} (training expert): ground truth "
                     f"{gap['ground_truth']:.3f}, shuffled-audio floor {gap['floor']:.3f} -> closer "
                     f"to ground truth: {'yes' if gap['closer_to_ground_truth'] else 'NO'}")
    judge = summary.get("judge")
    if judge:
        lines.append(f"- generated LSE-D {format_value(judge['lse_d'], '{:.3f}')} (independent judge, "
                     f"held-out accuracy {format_value(judge['accuracy'], '{:.1%}')}): ground truth "
                     f"{format_value(judge['lse_d_ground_truth'], '{:.3f}')}, floor "
                     f"{format_value(judge['lse_d_floor'], '{:.3f}')} -> closer to ground truth: "
                     f"{_met(targets['judge.lse_d']['met'])}")
    oracle = summary.get("oracle")
    if oracle:
        lines.append(f"- against the oracle: lower-half PSNR "
                     f"{format_value(oracle['lower_psnr'], '{:.2f}')} dB (target >= "
                     f"{LOWER_PSNR_TARGET:g}: {_met(targets['oracle.lower_psnr']['met'])}; input "
                     f"unchanged {format_value(oracle['floor_lower_psnr'], '{:.2f}')}, oracle "
                     f"through the codec {format_value(oracle['ceiling_lower_psnr'], '{:.2f}')}), "
                     f"mouth-opening correlation {format_value(oracle['opening_corr'], '{:.3f}')} "
                     f"(target >= {OPENING_CORR_TARGET}: {_met(targets['oracle.opening_corr']['met'])})")
    lines.append(f"- reconstruction PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.4f}")
    full = summary.get("full_frame")
    if full:
        lines.append(f"- full frame (face {full['face']} in a scene, {full['detector']}; audio of "
                     f"{full['audio']}): " + "; ".join(
                         f"{kind} lower-half PSNR {format_value(full[kind]['lower_psnr'], '{:.2f}')} dB, "
                         f"opening corr. {format_value(full[kind]['opening_corr'], '{:.3f}')}"
                         for kind in ("video", "still"))
                     + f" (faces detected in {full['video']['faces_detected']} of "
                       f"{full['video']['faces_detected'] + full['video']['faces_interpolated'] + full['video']['frames_kept']}"
                       " video frames)")
    lines.append(f"- all targets met: {'yes' if summary['targets_met'] else 'NO'}")
    lines += ["", markdown_table(summary["lipsync_rows"],
                                 title="Lip sync by the training expert (test faces, other clips' audio)")]
    if summary.get("judge_rows"):
        lines.append(markdown_table(summary["judge_rows"], title="Lip sync by the independent judge"))
    if summary.get("oracle_rows"):
        lines.append(markdown_table(summary["oracle_rows"], title=ORACLE_TITLE, columns=ORACLE_COLUMNS))
    lines += [markdown_table(summary["reconstruction_rows"], title="Reconstruction (own audio)"),
              "Outputs:"]
    lines += [f"- {name}: {path}" for name, path in summary["outputs"].items()]
    return "\n".join(lines) + "\n"
