"""Finding released weights where PaddleGAN's own tools leave them, without downloading anything.

PaddleGAN downloads its weights on first use: ``wav2lip_hq.pdparams`` and ``s3fd_paddle.pdparams``
into Paddle's weights cache (``~/.cache/paddle/hapi/weights``), ``GPEN-512.pdparams`` into its own
(``~/.cache/ppgan``). A user who ran PaddleGAN before has them there; anyone else can put them in
the folder named by the ``PPGAN_HOME`` environment variable. This module only looks: the network
is never used at run time.
"""

from __future__ import annotations

import os
from typing import List, Optional

HOME_VARIABLE = "PPGAN_HOME"
RELEASE_PAGE = "https://github.com/PaddlePaddle/PaddleGAN"  # where the released files are listed


def weights_folders() -> List[str]:
    """Folders searched for released weights, in order: ``$PPGAN_HOME`` (when set),
    ``~/.cache/ppgan``, ``~/.cache/paddle/hapi/weights``."""
    folders = []
    if os.environ.get(HOME_VARIABLE):
        folders.append(os.path.expanduser(os.environ[HOME_VARIABLE]))
    folders.append(os.path.expanduser(os.path.join("~", ".cache", "ppgan")))
    folders.append(os.path.expanduser(os.path.join("~", ".cache", "paddle", "hapi", "weights")))
    return folders


def find_released_weights(filename: str) -> Optional[str]:
    """The first ``<folder>/<filename>`` that exists among ``weights_folders()``, or None."""
    for folder in weights_folders():
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def missing_weights_message(filename: str, flag: str) -> str:
    """One line saying where ``filename`` was looked for and how to provide it."""
    return (f"no {flag} given and {filename} is not in {' or '.join(weights_folders())}: "
            f"pass {flag}, or put PaddleGAN's released {filename} (listed at {RELEASE_PAGE}) "
            f"into one of those folders or into ${HOME_VARIABLE}; nothing is downloaded")
