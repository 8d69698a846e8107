"""YAML configs with ``_base_`` inheritance, dotted command-line overrides and attribute access.

    cfg = load_config("configs/wav2lip.yaml", overrides=["model.syncnet_wt=0.03"])
    cfg.model.generator.name       # attribute access
    dump_config(cfg, "output/run/config.yaml")

``_base_`` (a path or a list of paths, relative to the file that names them) is loaded first;
the child's dicts are merged into the base recursively, everything else (lists included) replaces.
Overrides are ``a.b.c=value`` with ``value`` parsed as YAML, and may only set keys that exist.

A top-level ``dataroot`` (when not null) is the corpus of every ``dataset`` block: it replaces
their own ``dataroot``, so a corpus path is given once (``-o dataroot=data/my_speaker``).
"""

from __future__ import annotations

import copy
import os
import re
from typing import IO, Any, Dict, FrozenSet, Iterable, List, Mapping, MutableMapping, Optional, Tuple, Union

import yaml
from easydict import EasyDict

from .errors import ConfigError
from .registry import closest

BASE_KEY = "_base_"


class AttrDict(EasyDict):
    """A dict whose keys are also attributes (nested dicts and lists of dicts are converted)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``), because
    learning rates are written that way and a string there fails far from the config."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."))


def parse_yaml(text: Union[str, IO[str]]) -> Any:
    """Parse YAML text with the project's loader."""
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path: str) -> Dict[str, Any]:
    """The mapping at the top of a YAML file (ConfigError for a missing file, bad YAML or no mapping)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = parse_yaml(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, "
                          f"not a {type(data).__name__}")
    return data


def merge_dicts(base: Dict[str, Any], child: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``base`` updated by ``child``: dicts merge recursively, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_with_bases(path: str, seen: FrozenSet[str]) -> Dict[str, Any]:
    """The config at ``path`` merged over its ``_base_`` chain (``seen``: files up the chain)."""
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"config {path} inherits from itself through _base_")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    merged: Dict[str, Any] = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        merged = merge_dicts(merged, _load_with_bases(base_path, seen | {path}))
    return merge_dicts(merged, data)


def parse_override(text: str) -> Tuple[List[str], Any]:
    """Split ``"a.b.c=value"`` into (["a", "b", "c"], parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub.key=value")
    key, raw = text.split("=", 1)
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = parse_yaml(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(cfg: MutableMapping[str, Any], text: str) -> None:
    """Set one ``a.b.c=value`` override in place; the key must already exist."""
    keys, value = parse_override(text)
    node = cfg
    for depth, key in enumerate(keys):
        path = ".".join(keys[:depth + 1])
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                raise ConfigError(f"unknown override key {path!r}: index {key} is outside a "
                                  f"list of {len(node)}")
            key = int(key)
        elif not isinstance(node, dict) or key not in node:
            options = list(node) if isinstance(node, dict) else []
            hint = closest(key, options)
            parent = ".".join(keys[:depth]) or "the top level"
            hint = (f"; closest existing key: {'.'.join(keys[:depth] + [hint])!r}" if hint
                    else f"; keys under {parent}: {', '.join(map(str, options)) or '(none)'}")
            raise ConfigError(f"unknown override key {path!r}{hint}")
        if last:
            node[key] = value
        else:
            node = node[key]


def load_config(path: str, overrides: Optional[Iterable[str]] = ()) -> AttrDict:
    """Load a YAML config with its ``_base_`` chain and apply ``a.b.c=value`` overrides.

    Args:
        path: YAML file.
        overrides: iterable of ``"dotted.key=value"`` strings (values parsed as YAML).
    Returns:
        AttrDict of the resolved config.
    Raises:
        ConfigError: missing file, malformed YAML, or an override naming a key that does not exist.
    """
    data = _load_with_bases(path, frozenset())
    for text in overrides or ():
        apply_override(data, text)
    _share_dataroot(data)
    return AttrDict(data)


def _share_dataroot(data: MutableMapping[str, Any]) -> None:
    """Copy a non-null top-level ``dataroot`` into every dataset block (see the module doc)."""
    root = data.get("dataroot")
    if root is None:
        return
    datasets = data.get("dataset")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError(f"dataroot is set ({root}) but the config has no dataset blocks to use it")
    for block in datasets.values():
        if isinstance(block, dict):
            block["dataroot"] = root


def to_plain(obj: Any) -> Any:
    """Convert AttrDicts (and nested containers) to plain dicts and lists for dumping."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def dump_config(cfg: Mapping[str, Any], path: Optional[str] = None) -> str:
    """Return the resolved config as YAML text and, if ``path`` is given, write it there."""
    text = yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=False)
    if path:
        from .atomic import atomic_write  # a full disk must not leave an empty config.yaml
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text
