"""Block registry: ``@register("stage.name")`` and the ``semflow.blocks`` entry points.

Modules named in the environment variable ``SEMFLOW_BLOCKS`` (comma separated) are
imported too, for block modules under development that are not packaged yet.
Built-in blocks (the ``blocks`` package) register through the same entry-point group
as third-party packages, so the engine never imports them by name. A second class
registered under an id that is taken is refused with both classes named.

A renamed block keeps its old id as a deprecated alias for one format version
(``deprecate("csirs.reshape", "tensor.reshape")``): ``get`` resolves it, ``renamed``
tells validation to print a note, and ``all_types`` lists only the current ids.
"""
from __future__ import annotations

import os
import re
import sys
from importlib import import_module
from importlib.metadata import entry_points

from .errors import RegistryError, brief, did_you_mean

ENTRY_POINT_GROUP = "semflow.blocks"
_TYPE_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

_REGISTRY: dict[str, type] = {}
_ALIASES: dict[str, str] = {}          # deprecated id -> current id
_PLUGINS_LOADED = False
#: problems met while loading plugins (duplicates, import errors), one line each
plugin_problems: list[str] = []


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(type_id: str):
    """Class decorator: register a Block subclass under ``stage.name``."""
    from .block import Block

    if not _TYPE_ID.match(type_id):
        raise RegistryError(f"block type id {type_id!r} must look like 'stage.name' (lower case)")

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Block)):
            raise RegistryError(f"@register({type_id!r}) must decorate a Block subclass")
        if type_id in _ALIASES:
            raise RegistryError(f"block type '{type_id}' is a deprecated alias of '{_ALIASES[type_id]}'; "
                                f"refusing {_qualname(cls)}")
        old = _REGISTRY.get(type_id)
        if old is not None and _qualname(old) != _qualname(cls):
            raise RegistryError(f"block type '{type_id}' is already registered by {_qualname(old)}; "
                                f"refusing {_qualname(cls)}")
        cls.type_id = type_id
        _REGISTRY[type_id] = cls
        return cls

    return deco


def deprecate(old_id: str, new_id: str) -> None:
    """Keep ``old_id`` working as an alias of the registered ``new_id`` (one format version)."""
    if not _TYPE_ID.match(old_id):
        raise RegistryError(f"block type id {old_id!r} must look like 'stage.name' (lower case)")
    if old_id in _REGISTRY:
        raise RegistryError(f"cannot deprecate '{old_id}': it is a registered block type")
    if _ALIASES.get(old_id, new_id) != new_id:
        raise RegistryError(f"'{old_id}' is already an alias of '{_ALIASES[old_id]}'; refusing '{new_id}'")
    _ALIASES[old_id] = new_id


def renamed(type_id: str) -> str | None:
    """The current id of a deprecated alias, or None for every other id."""
    load_plugins()
    return _ALIASES.get(type_id)


def load_plugins() -> None:
    """Import every module named in the ``semflow.blocks`` entry-point group, once."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    eps = entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: e.name):
        try:
            ep.load()
        except RegistryError as exc:
            plugin_problems.append(f"plugin '{ep.name}' ({ep.value}): {exc}")
        except Exception as exc:  # a broken plugin must not take the engine down
            plugin_problems.append(f"plugin '{ep.name}' ({ep.value}) failed to import: "
                                   f"{type(exc).__name__}: {exc}")
    # SEMFLOW_BLOCKS=mod1,mod2: block modules on sys.path that are not packaged (yet)
    for mod in filter(None, (m.strip() for m in os.environ.get("SEMFLOW_BLOCKS", "").split(","))):
        try:
            import_module(mod)
        except Exception as exc:
            plugin_problems.append(f"SEMFLOW_BLOCKS module '{mod}' failed to import: {type(exc).__name__}: {exc}")
    for line in plugin_problems:
        print(f"semflow: warning: {line}", file=sys.stderr)


def load_module(name: str) -> None:
    """Import a module of blocks by dotted name (tests, scripts)."""
    import_module(name)


def get(type_id: str):
    load_plugins()
    try:
        return _REGISTRY[_ALIASES.get(type_id, type_id)]
    except KeyError:
        same_name = [t for t in _REGISTRY if t.split(".")[-1] == type_id.split(".")[-1]]
        hint = f" (did you mean '{same_name[0]}'?)" if same_name else did_you_mean(type_id, _REGISTRY)
        shown = f"'{type_id}'" if len(type_id) <= 80 else brief(type_id)
        raise RegistryError(f"unknown block type {shown}{hint}") from None


def has(type_id: str) -> bool:
    load_plugins()
    return _ALIASES.get(type_id, type_id) in _REGISTRY


def all_types() -> dict[str, type]:
    load_plugins()
    return dict(sorted(_REGISTRY.items()))
