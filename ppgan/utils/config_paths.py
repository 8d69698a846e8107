"""The one rule that turns a path written in a config into a file or folder on disk.

An absolute path is used as given. A relative one is looked for, in this order:

1. in its anchor, for keys whose value is relative to another path by meaning (``filelist``: the
   corpus folder, where a bare split name such as ``train`` also finds ``train.txt``);
2. in the working directory, for keys without an anchor (an unrelated ``train.txt`` in whatever
   folder the command runs from must not replace the corpus's own list);
3. beside the config file: its folder and that folder's two parents (``filelists/train.txt`` in
   ``configs/demo/x.yaml`` reaches the project's ``filelists/``).

The first candidate that exists as the kind the key names (file or folder) wins and is returned
absolute; none existing is an error listing every place looked in. ``PATH_KEYS`` names every
key this rule serves. (``_base_`` in a config is an include, resolved by ``utils.config``
relative to the including file only; output folders are created, not looked up: both are outside
this rule.)
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple, Type

from .errors import ConfigError, DataError, PPGanError, WeightsError

CONFIG_PARENTS = 2  # parents of the config's folder searched (configs/demo/x.yaml -> project root)


@dataclasses.dataclass(frozen=True)
class PathKey:
    """How one config key's path is looked up and reported.

    Attributes:
        where: the dotted config key named in errors.
        kind: "file" or "dir": what the path must be.
        what: what the path holds, for errors ("corpus folder").
        hint: how to fix a path that is not found.
        anchored: the value is relative to an anchor folder (searched instead of the working directory).
        suffixes: endings tried after each candidate ("" = as written).
        error: exception raised when nothing is found.
    """

    where: str
    kind: str
    what: str
    hint: str
    anchored: bool = False
    suffixes: Tuple[str, ...] = ("",)
    error: Type[PPGanError] = DataError


PATH_KEYS: Dict[str, PathKey] = {
    "dataroot": PathKey("dataset.dataroot", "dir", "corpus folder",
                        "run tools/preprocess.py or fix dataset.dataroot"),
    "filelist": PathKey("dataset.filelist", "file", "filelist", "fix dataset.filelist (a split name such as "
                        "train, a list in the corpus folder or a path)", anchored=True, suffixes=("", ".txt")),
    "syncnet_weights": PathKey("model.syncnet_weights", "file", "expert weights file",
                               "train the expert first (configs/syncnet.yaml) or fix the path",
                               error=WeightsError),
}


def config_folders(config_dir: Optional[str]) -> List[str]:
    """The config file's folder and up to ``CONFIG_PARENTS`` of its parents, absolute."""
    if not config_dir:
        return []
    folders = [os.path.abspath(config_dir)]
    for _ in range(CONFIG_PARENTS):
        parent = os.path.dirname(folders[-1])
        if parent == folders[-1]:
            break
        folders.append(parent)
    return folders


def path_candidates(value: str, key: str, config_dir: Optional[str] = None,
                    anchor: Optional[str] = None) -> List[str]:
    """Every place ``value`` of config key ``key`` is looked for, in the rule's order (module docstring)."""
    spec = PATH_KEYS[key]
    if os.path.isabs(value):
        bases = [""]
    elif spec.anchored:
        bases = ([anchor] if anchor else []) + config_folders(config_dir)
    else:
        bases = [os.getcwd()] + config_folders(config_dir)
    return [os.path.join(base, value) + suffix for base in bases for suffix in spec.suffixes]


def resolve_config_path(value: Optional[str], key: str, config_dir: Optional[str] = None,
                        anchor: Optional[str] = None) -> str:
    """The file or folder a config's path ``value`` for ``key`` names, by the module's one rule.

    Args:
        value: the path as written in the config (or on the command line).
        key: a key of ``PATH_KEYS`` ("dataroot", "filelist", "syncnet_weights").
        config_dir: folder of the config file (None: no config, e.g. a command-line path).
        anchor: the folder an anchored key is relative to (``filelist``: the resolved dataroot).
    Returns:
        The absolute path of the first candidate that exists as the key's kind.
    Raises:
        ConfigError: ``value`` is empty.
        The key's error (DataError, WeightsError for weights): nothing found; names every candidate.
    """
    spec = PATH_KEYS[key]
    if not value:
        raise ConfigError(f"{spec.where} is not set: name the {spec.what}")
    exists = os.path.isdir if spec.kind == "dir" else os.path.isfile
    candidates = path_candidates(os.fspath(value), key, config_dir, anchor)
    for path in candidates:
        if exists(path):
            return os.path.abspath(path)
    raise spec.error(f"{spec.where}: {spec.what} not found: {value} (looked in {', '.join(candidates)}); "
                     f"{spec.hint}")
