"""Evaluation reports: a JSON file, a markdown table and a plot of mean distance against offset.

A report holds *rows* (one per scored set: ground truth, generated, shuffled-audio floor), each
a dict with ``name``, ``num_videos``, ``lse_d``, ``lse_c``, ``av_offset`` (median over videos),
``offsets`` and ``mdist`` (the mean curve), and optionally ``psnr``, ``ssim``,
``sync_accuracy`` and ``note`` (why a row has no numbers). Missing values are None.
All files are written to a temporary name and renamed, so a failed run leaves no half file.
"""

import json
import math
import os

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


def json_safe(value):
    """Replace non-finite floats (JSON has none) by the strings "inf" / "-inf" / "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def format_value(value, spec):
    """``spec.format(value)``; a missing value prints as "–", an infinite one as "∞"."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return spec.format(value)


def markdown_table(rows, title=None):
    """The rows as a GitHub markdown table (missing values as "–", notes listed below it)."""
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header for header, _, _ in REPORT_COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in REPORT_COLUMNS) + "|")
    for row in rows:
        cells = [format_value(row.get(key), spec) for _, key, spec in REPORT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row['name']}: {row['note']}" for row in rows if row.get("note")]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def plot_offsets(rows, path, title="mean sync distance against AV offset"):
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


def write_report(out_dir, rows, meta=None, per_video=None, stem="evaluation"):
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_offsets.png`` into ``out_dir``.

    Args:
        rows: list of row dicts (see the module docstring).
        meta: what was evaluated (scorer, folders, vshift, ...), stored in the JSON and the
            markdown header.
        per_video: optional list of per-video dicts for the JSON.
    Returns:
        dict with the three paths (``json``, ``markdown``, ``plot``).
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    paths = {"json": os.path.join(out_dir, f"{stem}.json"),
             "markdown": os.path.join(out_dir, f"{stem}.md"),
             "plot": os.path.join(out_dir, f"{stem}_offsets.png")}
    payload = {"meta": meta, "rows": rows, "per_video": per_video or []}
    write_text_atomic(paths["json"], json.dumps(json_safe(payload), indent=2) + "\n")
    header = "".join(f"- {key}: {value}\n" for key, value in meta.items())
    write_text_atomic(paths["markdown"],
                       markdown_table(rows, title=meta.get("title", "Evaluation")) + "\n" + header)
    plot_offsets(rows, paths["plot"])
    return paths
