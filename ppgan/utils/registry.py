"""Name -> class registries and the one function that builds objects from config blocks.

A config block ``{name: X, k: v}`` builds ``REGISTRY.get("X")(k=v, ...)``. Unknown names fail
listing the registered ones; keys the class does not accept fail naming the closest accepted key.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, TypeVar

# A registered class or function: whatever builds the object of a config block.
_Obj = TypeVar("_Obj", bound=Callable[..., Any])

from .errors import ConfigError


def closest(word: object, candidates: Iterable[object]) -> Optional[str]:
    """Return the candidate most similar to ``word``, or None when nothing is close."""
    found = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.5)
    return found[0] if found else None


class Registry:
    """A named map from string keys to classes or functions.

    Use ``@REG.register()`` (key = ``__name__``) or ``@REG.register("alias")``. Registering a
    name twice is an error, so two modules can never silently shadow each other.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: Dict[str, Callable[..., Any]] = {}

    def register(self, name: Optional[str] = None) -> Callable[[_Obj], _Obj]:
        """Decorator registering a class or function under ``name`` (default: its ``__name__``)."""

        def decorator(obj: _Obj) -> _Obj:
            key = name or obj.__name__
            if key in self._items:
                raise KeyError(f"{key!r} is already registered in the {self.name} registry "
                               f"(by {self._items[key].__module__})")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: object) -> Callable[..., Any]:
        """Return the object registered as ``name``; unknown names list the registered ones.

        ``name`` is typed ``object`` because it comes straight from a config block (any YAML
        value); only registered strings pass.
        """
        if not isinstance(name, str) or name not in self._items:
            hint = closest(name, self._items)
            hint = f" Did you mean {hint!r}?" if hint else ""
            raise ConfigError(f"unknown {self.name} name {name!r}; registered: "
                              f"{', '.join(sorted(self._items)) or '(none)'}.{hint}")
        return self._items[name]

    def names(self) -> List[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {self.names()})"


def accepted_keys(obj: Callable[..., Any]) -> Optional[List[str]]:
    """Keyword names ``obj`` (a class or function) accepts, or None if it takes ``**kwargs``."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def build_from_config(cfg: Any, registry: Registry, where: Optional[str] = None, **default_args: Any) -> Any:
    """Build the object a ``{name: X, ...}`` block describes.

    Args:
        cfg: mapping with a ``name`` key; the other keys become keyword arguments.
        registry: the ``Registry`` to look ``name`` up in.
        where: dotted config path of the block (e.g. ``"model.generator"``), used in errors.
        **default_args: keyword arguments used when the block does not set them.
    Returns:
        The constructed object.
    Raises:
        ConfigError: no ``name``, an unknown name, or a key the class does not accept.
    """
    where = where or registry.name
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ConfigError(f"config block {where!r} needs a 'name:' key naming a registered "
                          f"{registry.name} ({', '.join(registry.names())})")
    kwargs = copy.deepcopy(dict(cfg))
    obj = registry.get(kwargs.pop("name"))
    for key, value in default_args.items():
        kwargs.setdefault(key, value)
    accepted = accepted_keys(obj)
    if accepted is not None:
        for key in kwargs:
            if key not in accepted:
                hint = closest(key, accepted)
                hint = f"; did you mean {hint!r}?" if hint else f"; accepted: {', '.join(accepted)}"
                raise ConfigError(f"unknown key {key!r} in {where} ({cfg['name']}){hint}")
    return obj(**kwargs)
