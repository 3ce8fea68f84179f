"""Which weights a train stage means: blocks, parameter patterns inside a block, sub-modules.

One syntax serves ``trainable:``, ``optimizer.lr_by_block``, ``copy_weights`` and ``init``:

    enc                 the block ``enc`` (a graph block: every block inside it)
    codec/enc           block ``enc`` inside graph block ``codec``
    dm:control.*        the parameters of block ``dm`` whose names match the glob
                        ``control.*`` (names as ``named_parameters()`` gives them)
    dm:control          the sub-module ``control`` of ``dm`` (every parameter under it)

``/`` walks graph blocks and ``:`` enters a block's own modules, so the two never mix up:
block names are identifiers, parameter names are dotted module paths. Parameter names
exist only once the blocks are built, so a pattern is checked at run start
(:func:`select_parameters` raising :class:`SelectorError`), never statically.
"""
from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

from .errors import SemflowError


class SelectorError(SemflowError):
    """A selector names nothing, or two states do not fit; the message is one line."""


def split(selector: str) -> tuple[str, str]:
    """``"dm:control.*"`` -> ``("dm", "control.*")``; a plain block gives ``("enc", "")``."""
    block, _, inner = str(selector).partition(":")
    return block.strip(), inner.strip()


def blocks_named(name: str, names) -> list[str]:
    """The flattened block names ``name`` stands for: itself, or every block inside it."""
    return [n for n in names if n == name or n.startswith(name + "/")]


def _matches(pname: str, pattern: str) -> bool:
    return fnmatchcase(pname, pattern) or pname.startswith(pattern + ".")


def select_parameters(modules: dict, selector: str, allow_empty: bool = False) -> list[tuple[str, str, nn.Parameter]]:
    """``[(block, parameter name, parameter)]`` that ``selector`` names, in graph order.

    ``modules`` maps flattened block names to built modules. Raises SelectorError when the
    selector names no block, or no parameter (a whole block without parameters is allowed
    with ``allow_empty``: a block may have none in some configurations)."""
    block, pattern = split(selector)
    names = blocks_named(block, modules)
    if not names:
        raise SelectorError(f"'{selector}': no block named '{block}'")
    out = [(b, pname, p) for b in names for pname, p in modules[b].named_parameters()
           if not pattern or _matches(pname, pattern)]
    if not out:
        if not pattern and allow_empty:
            return out
        if not pattern:
            raise SelectorError(f"'{selector}': block '{block}' has no parameters")
        some = [pname for b in names for pname, _ in modules[b].named_parameters()]
        listed = ", ".join(some[:6]) + (", ..." if len(some) > 6 else "") if some else "none"
        raise SelectorError(f"'{selector}': pattern '{pattern}' matches no parameter of block '{block}' "
                            f"(parameters: {listed})")
    return out


def submodule(modules: dict, path: str) -> tuple[str, nn.Module]:
    """``"dm:base.encoder"`` -> (block name, the module); a plain block name gives the block."""
    block, inner = split(path)
    if block not in modules:
        raise SelectorError(f"'{path}': no block named '{block}'")
    if not inner:
        return block, modules[block]
    try:
        return block, modules[block].get_submodule(inner)
    except AttributeError:
        kids = [n for n, _ in modules[block].named_modules() if n and "." not in n]
        raise SelectorError(f"'{path}': block '{block}' has no sub-module '{inner}' "
                            f"(top-level sub-modules: {', '.join(kids[:8]) or 'none'})") from None


def check_fit(module: nn.Module, state: dict, what: str) -> None:
    """Raise SelectorError (one line) unless ``state`` loads into ``module`` exactly.

    ``what`` says where the state comes from and goes to, e.g. "init enc <- run.pt:enc"."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:3])}" + (", ..." if len(missing) > 3 else ""))
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:3])}" + (", ..." if len(unexpected) > 3 else ""))
        raise SelectorError(f"{what}: the states do not fit ({'; '.join(detail)})")
    for k, v in state.items():
        mine = own[k]
        if torch.is_tensor(v) and torch.is_tensor(mine) and tuple(v.shape) != tuple(mine.shape):
            raise SelectorError(f"{what}: parameter '{k}' has shape {tuple(v.shape)} in the source "
                                f"but {tuple(mine.shape)} here")


def load_into(module: nn.Module, state: dict, what: str) -> None:
    """``module.load_state_dict(state)`` after :func:`check_fit`."""
    check_fit(module, state, what)
    module.load_state_dict(state)


def pairs(modules: dict, dst: str, src: str) -> list[tuple[str, str]]:
    """A ``dst -> src`` mapping as pairs of single blocks or sub-modules: a graph block on
    both sides expands to its inner blocks (``codec -> old`` gives ``codec/enc -> old/enc``, ...)."""
    dblock, dinner = split(dst)
    sblock, sinner = split(src)
    if dinner or sinner:
        return [(dst, src)]
    names = blocks_named(dblock, modules)
    if not names:
        raise SelectorError(f"'{dst}': no block named '{dblock}'")
    return [(n, sblock + n[len(dblock):]) for n in names]


def checkpoint_state(state: dict, path: str) -> dict:
    """The state of block or sub-module ``path`` inside a checkpoint's ``blocks`` dict."""
    from .scheduler import _key
    block, inner = split(path)
    sub = state_under(state, f"blocks.{_key(block)}." + (f"{inner}." if inner else ""))
    if not sub:
        held = sorted({k.split(".")[1].replace("__", "/") for k in state if k.startswith("blocks.")})
        if inner and state_under(state, f"blocks.{_key(block)}."):
            raise SelectorError(f"'{path}': the checkpoint's block '{block}' has no sub-module '{inner}'")
        raise SelectorError(f"'{path}': the checkpoint holds no block '{block}' "
                            f"(it holds: {', '.join(held[:8]) or 'nothing'}{', ...' if len(held) > 8 else ''})")
    return sub


def state_under(state: dict, prefix: str) -> dict:
    """The entries of a flat state dict under ``prefix`` (``"blocks.enc."``), prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
