"""Evaluation reports: a JSON file, a markdown table and a plot of mean distance against offset.

A report holds *rows* (one per scored set: ground truth, generated, shuffled-audio floor), each
a dict with ``name``, ``num_videos``, ``lse_d``, ``lse_c``, ``av_offset`` (median over videos),
``offsets`` and ``mdist`` (the mean curve), and optionally ``psnr``, ``ssim``,
``sync_accuracy`` and ``note`` (why a row has no numbers). Missing values are None.
On synthetic corpora a report may also hold *oracle rows* (``ppgan.metrics.oracle``: generated,
input unchanged, oracle) with ``lower_psnr``, ``lower_ssim`` and ``opening_corr``: a second
table, an ``oracle`` section in the JSON and a plot of mouth opening against frame.
All files are written to a temporary name and renamed, so a failed run leaves no half file.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

REPORT_COLUMNS = (
    ("row", "name", "{}"),
    ("videos", "num_videos", "{}"),
    ("LSE-D ↓", "lse_d", "{:.3f}"),
    ("LSE-C ↑", "lse_c", "{:.3f}"),
    ("AV offset", "av_offset", "{:+d}"),
    ("PSNR ↑", "psnr", "{:.2f}"),
    ("SSIM ↑", "ssim", "{:.4f}"),
    ("expert acc.", "sync_accuracy", "{:.1%}"),
)
ORACLE_COLUMNS = (
    ("row", "name", "{}"),
    ("videos", "num_videos", "{}"),
    ("lower-half PSNR ↑", "lower_psnr", "{:.2f}"),
    ("lower-half SSIM ↑", "lower_ssim", "{:.4f}"),
    ("opening corr. ↑", "opening_corr", "{:.3f}"),
)


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (JSON has none) by the strings "inf" / "-inf" / "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def format_value(value: Any, spec: str) -> str:
    """``spec.format(value)``; a missing value prints as "–", an infinite one as "∞"."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return spec.format(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], title: Optional[str] = None,
                   columns: Sequence[Tuple[str, str, str]] = REPORT_COLUMNS) -> str:
    """The rows as a GitHub markdown table (missing values as "–", notes listed below it).

    ``columns``: (header, row key, format) triples; ``ORACLE_COLUMNS`` for oracle rows."""
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header for header, _, _ in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [format_value(row.get(key), spec) for _, key, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row['name']}: {row['note']}" for row in rows if row.get("note")]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def plot_offsets(rows: Sequence[Mapping[str, Any]], path: str,
                 title: str = "mean sync distance against AV offset") -> None:
    """Plot each row's mean distance curve against offset (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for row in rows:
            if row.get("mdist"):
                ax.plot(row["offsets"], row["mdist"], marker=".", label=row["name"])
        ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("AV offset in frames (positive = audio delayed)")
        ax.set_ylabel("mean distance over windows")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        tmp = f"{path}.tmp{os.getpid()}"
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)


ORACLE_TITLE = "Against the oracle (the true mouths of the dubbing)"


def plot_openings(per_video: Sequence[Mapping[str, Any]], path: str, max_videos: int = 3) -> None:
    """Plot mouth opening against frame for the first videos: oracle, generated, input (PNG).

    Args:
        per_video: oracle entries with ``oracle_opening`` and ``generated`` / ``floor``
            ``opening`` series (``ppgan.apps.oracle_evaluation``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = per_video[:max_videos]
    fig, axes = plt.subplots(len(shown), 1, figsize=(6.4, 1.0 + 1.6 * len(shown)), dpi=100,
                             squeeze=False)
    try:
        for ax, entry in zip(axes[:, 0], shown):
            ax.plot(entry["oracle_opening"], color="black", linewidth=1.6, label="oracle")
            ax.plot(entry["generated"]["opening"], color="tab:orange", label="generated")
            ax.plot(entry["floor"]["opening"], color="tab:grey", linestyle=":", label="input unchanged")
            ax.set_title(f"face {entry['face']}, audio {entry['audio']}", fontsize=9)
            ax.set_ylabel("opening")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("frame")
        axes[0, 0].legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        tmp = f"{path}.tmp{os.getpid()}"
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)


def write_report(out_dir: str, rows: List[Dict[str, Any]], meta: Optional[Mapping[str, Any]] = None,
                 per_video: Optional[List[Dict[str, Any]]] = None, stem: str = "evaluation",
                 oracle: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_offsets.png`` into ``out_dir``.

    Args:
        rows: list of row dicts (see the module docstring).
        meta: what was evaluated (scorer, folders, vshift, ...), stored in the JSON and the
            markdown header.
        per_video: optional list of per-video dicts for the JSON.
        oracle: optional ``{"rows": [...], "per_video": [...]}`` (``evaluate_oracle``): adds the
            oracle table, an ``oracle`` JSON section and ``<stem>_opening.png``.
    Returns:
        dict with the paths (``json``, ``markdown``, ``plot``, with oracle rows ``opening_plot``).
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    paths = {"json": os.path.join(out_dir, f"{stem}.json"),
             "markdown": os.path.join(out_dir, f"{stem}.md"),
             "plot": os.path.join(out_dir, f"{stem}_offsets.png")}
    payload = {"meta": meta, "rows": rows, "per_video": per_video or []}
    # An oracle-only report (no sync scorer) has no LSE rows: no LSE table and no offset plot.
    tables = [markdown_table(rows, title=meta.get("title", "Evaluation"))] if rows else []
    if oracle:
        payload["oracle"] = {"rows": oracle["rows"], "per_video": oracle.get("per_video", [])}
        tables.append(markdown_table(oracle["rows"], title=ORACLE_TITLE if rows else
                                     meta.get("title", ORACLE_TITLE), columns=ORACLE_COLUMNS))
        paths["opening_plot"] = os.path.join(out_dir, f"{stem}_opening.png")
    write_text_atomic(paths["json"], json.dumps(json_safe(payload), indent=2) + "\n")
    header = "".join(f"- {key}: {value}\n" for key, value in meta.items())
    write_text_atomic(paths["markdown"], "\n".join(tables) + "\n" + header)
    if rows:
        plot_offsets(rows, paths["plot"])
    else:
        paths.pop("plot")
    if oracle and oracle.get("per_video"):
        plot_openings(oracle["per_video"], paths["opening_plot"])
    elif oracle:
        paths.pop("opening_plot")
    return paths
