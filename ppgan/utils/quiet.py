"""Silence Paddle's known-harmless warnings, once, when ``ppgan`` is imported.

Each filter names one message that says nothing a user of this project can act on; everything
else Paddle warns about stays visible. Paddle's C++ INFO log lines (executor and oneDNN banners)
are hidden through ``GLOG_minloglevel=1``, which must be set before Paddle is imported; its
WARNING and ERROR lines stay. A value the user set is kept.
"""

from __future__ import annotations

import os
import re
import warnings

# (message prefix, why it is harmless here)
HARMLESS_WARNINGS = (
    # paddle.utils.cpp_extension at import: only matters for compiling custom C++ operators,
    # which this project never does.
    ("No ccache found", "ccache speeds up compiling custom operators; none are compiled"),
    # paddle.pir.math_op_patch while the oneDNN convolution programs are built: the programs
    # never ask a tensor for its place.
    ("Tensor do not have 'place' interface for pir graph mode",
     "raised while building static programs; their tensors' place is never used"),
    # paddle.nn.layer.norm when a batch norm is traced in training mode: it states the
    # behaviour the trainer relies on (running statistics are updated).
    ("When training, we now always track global mean and variance",
     "states the batch-norm behaviour training relies on"),
)


def silence_known_harmless_warnings() -> None:
    """Install the filters of ``HARMLESS_WARNINGS`` and hide Paddle's C++ INFO lines."""
    os.environ.setdefault("GLOG_minloglevel", "1")
    for prefix, _ in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(prefix), category=UserWarning)
