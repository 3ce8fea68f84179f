"""Loss expressions over ports: ``mse(dec.image, src.image) + 0.1 * ce(dec.logits, src.label)``.

Port references ``block.port`` are swapped for placeholder names before the restricted
evaluator sees the text, so the evaluator itself never allows attribute access. Only the
functions of :data:`LOSS_FUNCTIONS` (and the expression functions of
``flowgraph.expr.DEFAULT_FUNCTIONS``) may be called; any other name is refused when the
loss is compiled, which validation reports at the loss's file:line.

Reductions take numbered or named axes: ``mean(x, dim=[2, 3])`` or ``mean(x, dim=["H",
"W"])``. A name is looked up in the declared shapes of the ports inside the reduced
argument (``dec.logits`` declared (B, C, H, W): "H" is axis 2; after a ``...`` axes count
from the end) and replaced by its number when the loss is compiled.
"""
from __future__ import annotations

import ast
import copy
import functools
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

from . import expr as E
from .errors import ExpressionError

_PORT_REF = re.compile(r"(?<![\w.$])([A-Za-z_][\w/]*)\.([A-Za-z_]\w*)(?![\w(])")
_PLACEHOLDER = re.compile(r"port_ref_(\d+)$")
ELLIPSIS = "..."
#: semflow's label for "no class" (unlabelled images, void pixels): ignored by ce and dice
UNLABELLED = -1


def _loss_function(fn):
    """Torch shape errors inside a loss function become one-line ValueErrors, which the
    evaluator reports as ``name(): message in 'the call'``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            raise ValueError(str(exc).splitlines()[0]) from None
    return wrapper


def _real(t):
    return torch.view_as_real(t) if torch.is_tensor(t) and t.is_complex() else t


def _as_tensor(x, like: torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    return torch.as_tensor(x, dtype=like.dtype if like.is_floating_point() else torch.float32,
                           device=like.device)


@_loss_function
def _mse(a, b):
    return F.mse_loss(_real(a), _real(b))


@_loss_function
def _l1(a, b):
    return F.l1_loss(_real(a), _real(b))


def _class_axis(logits, labels, dim) -> int:
    """The class axis of ``logits`` for integer ``labels``: given, or read from the shapes."""
    if dim is not None:
        d = dim + logits.dim() if dim < 0 else dim
        if not 1 <= d < logits.dim():
            raise ValueError(f"class axis dim={dim} is not a per-example axis of logits {tuple(logits.shape)}")
        return d
    lab, lg = tuple(labels.shape), tuple(logits.shape)
    dense = lab == lg[:1] + lg[2:]          # (B, C, H, W) against (B, H, W): classes at axis 1
    last = lab == lg[:-1]                    # (B, C) against (B,), (B, K, C) against (B, K)
    if dense and last and logits.dim() > 2:
        raise ValueError(f"logits {lg} and labels {lab} fit classes at axis 1 and at the last "
                         f"axis; say which with dim=1 or dim=-1")
    if dense:
        return 1
    if last:
        return logits.dim() - 1
    raise ValueError(f"labels {lab} do not fit logits {lg}: expects labels (B, ...) = logits "
                     f"without its class axis (axis 1, as (B, C, H, W) -> (B, H, W), or the last)")


@_loss_function
def _ce(logits, labels, ignore_index=UNLABELLED, weight=None, dim=None, label_smoothing=0.0):
    """Cross-entropy of class logits against integer labels, mean over the counted labels.

    The class axis comes from the shapes: dense logits (B, C, H, W) against labels (B, H, W)
    use axis 1 (segmentation); (B, C) against (B,) and seed 003's per-user (B, K, C) against
    (B, K) use the last axis. ``dim`` names it when both fit. Labels equal to
    ``ignore_index`` (default -1, semflow's "unlabelled") count for nothing; ``weight`` is a
    list of C class weights (the mean is then weighted, as torch's cross_entropy)."""
    c = _class_axis(logits, labels, dim)
    logits = logits.movedim(c, 1)
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=logits.dtype, device=logits.device)
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"weight has {weight.numel()} entries for {logits.shape[1]} classes")
    return F.cross_entropy(logits, labels.long(), weight=weight, ignore_index=int(ignore_index),
                           label_smoothing=float(label_smoothing))


@_loss_function
def _bce(p, target, weight=None):
    """Binary cross-entropy of probabilities p in [0, 1] (e.g. a sigmoid output), mean."""
    w = None if weight is None else _as_tensor(weight, p)
    return F.binary_cross_entropy(p, target.to(p.dtype), weight=w)


@_loss_function
def _bce_logits(x, target, weight=None, pos_weight=None):
    """Binary cross-entropy on logits (sigmoid inside, numerically stable), mean;
    ``pos_weight`` scales the positive term (class imbalance, e.g. sparse edge maps)."""
    w = None if weight is None else _as_tensor(weight, x)
    pw = None if pos_weight is None else _as_tensor(pos_weight, x)
    return F.binary_cross_entropy_with_logits(x, target.to(x.dtype), weight=w, pos_weight=pw)


@_loss_function
def _dice(p, target, smooth=1.0, ignore_index=UNLABELLED):
    """Soft Dice loss 1 - mean (2 sum p t + smooth) / (sum p + sum t + smooth).

    Multi-class: p (B, C, ...) class probabilities (a softmax) against integer labels
    (B, ...): one Dice per example and class over the spatial axes, averaged; pixels
    labelled ``ignore_index`` are left out. Binary / soft: p and target of one shape (a
    sigmoid against a 0/1 or soft mask): one Dice per example over all its values."""
    if not target.is_floating_point() and tuple(target.shape) == tuple(p.shape[:1] + p.shape[2:]):
        keep = (target != ignore_index).unsqueeze(1).to(p.dtype)
        t = F.one_hot(target.clamp_min(0).long(), p.shape[1]).movedim(-1, 1).to(p.dtype) * keep
        p = p * keep
        axes = tuple(range(2, p.dim()))
    elif p.shape == target.shape:
        t = target.to(p.dtype)
        axes = tuple(range(1, p.dim()))
    else:
        raise ValueError(f"target {tuple(target.shape)} fits neither p {tuple(p.shape)} (binary) "
                         f"nor p without its class axis 1 (integer labels)")
    inter = (p * t).sum(axes)
    total = p.sum(axes) + t.sum(axes)
    return 1.0 - ((2.0 * inter + smooth) / (total + smooth)).mean()


def _elementwise(op):
    @_loss_function
    def fn(a, b):
        if not torch.is_tensor(a) and not torch.is_tensor(b):
            return min(a, b) if op is torch.minimum else max(a, b)
        ref = a if torch.is_tensor(a) else b
        return op(_as_tensor(a, ref), _as_tensor(b, ref))
    fn.__doc__ = f"Elementwise {op.__name__} of two tensors (or a tensor and a number), broadcast."
    return fn


def _dims(dim):
    if isinstance(dim, str) or (isinstance(dim, (list, tuple)) and any(isinstance(d, str) for d in dim)):
        raise ValueError(f"axis names {dim!r} could not be resolved: they need the graph's port "
                         f"shapes (give the axis numbers instead)")
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


def _reduction(name, torch_op, plain):
    @_loss_function
    def fn(x, dim=None, keepdim=False):
        if not torch.is_tensor(x):
            return plain(x)
        if dim is None:
            return torch_op(x)
        return torch_op(x, dim=_dims(dim), keepdim=bool(keepdim))
    fn.__doc__ = (f"{name} of a tensor, over all values or over ``dim`` (an axis number, a name "
                  f"of a declared port axis, or a list of them).")
    return fn


def _plain_mean(x):
    if isinstance(x, (list, tuple)):
        return sum(x) / len(x) if x else float("nan")
    return x


@_loss_function
def _msssim(a, b):
    """Mean MS-SSIM over the batch, as ``sink.msssim`` computes it (fewer scales when small)."""
    from .metrics import ms_ssim_per_image
    a, b = a.clamp(0, 1), b.clamp(0, 1)
    if a.dim() > 4:                 # (B, K, 3, H, W) per user -> fold users into the batch
        a, b = a.flatten(0, a.dim() - 4), b.flatten(0, b.dim() - 4)
    return ms_ssim_per_image(a, b).mean()


@_loss_function
def _psnr(a, b):
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean()


#: every function a loss may call (besides the expression functions); listed in
#: docs/graph-format.md
LOSS_FUNCTIONS: Mapping[str, Callable] = {
    "mse": _mse, "l1": _l1, "ce": _ce, "cross_entropy": _ce,
    "bce": _bce, "bce_logits": _bce_logits, "dice": _dice,
    "msssim": _msssim, "psnr": _psnr,
    "mean": _reduction("Mean", torch.mean, _plain_mean),
    "sum": _reduction("Sum", torch.sum, E.DEFAULT_FUNCTIONS["sum"]),
    "minimum": _elementwise(torch.minimum), "maximum": _elementwise(torch.maximum),
    "sigmoid": _loss_function(torch.sigmoid),
    "softmax": _loss_function(lambda x, dim=1: torch.softmax(x, dim=int(dim))),
}
_REDUCTIONS = ("mean", "sum")


@dataclass
class CompiledLoss:
    text: str
    code: str                   # text with port references replaced by placeholders
    ports: list                 # [(block, port)] in placeholder order

    def __call__(self, values: dict, variables: dict | None = None):
        env = dict(variables or {})
        for i, (b, p) in enumerate(self.ports):
            env[f"port_ref_{i}"] = values[f"{b}.{p}"]
        return E.evaluate(self.code, env, LOSS_FUNCTIONS)


def output_shapes(classes: Mapping[str, type]) -> Callable[[str, str], tuple | None]:
    """``port_shape`` for :func:`compile_loss`: the declared shape of ``block.port`` from a
    mapping of block name -> block class (None when unknown)."""
    def port_shape(block: str, port: str):
        cls = classes.get(block)
        spec = None if cls is None else cls.outputs.get(port)
        return None if spec is None else spec.shape
    return port_shape


def compile_loss(text: str, port_shape: Callable[[str, str], tuple | None] | None = None) -> CompiledLoss:
    """Parse a loss, check its functions, and (given ``port_shape``) resolve named axes.

    Raises ExpressionError (one line) for bad syntax, unknown functions and axis names
    that no port of the reduced argument declares."""
    ports: list = []

    def sub(m):
        ref = (m.group(1), m.group(2))
        if ref not in ports:
            ports.append(ref)
        return f"port_ref_{ports.index(ref)}"

    code = _PORT_REF.sub(sub, text.strip())
    if "." in re.sub(r"\d+\.\d*|\.\d+", "", code):
        raise ExpressionError(f"cannot read {text!r}: write ports as block.port")
    body, calls = E.parse(code)    # raises ExpressionError on forbidden constructs
    known = {**E.DEFAULT_FUNCTIONS, **LOSS_FUNCTIONS}
    for name in sorted(calls):
        if name not in known:
            raise ExpressionError(f"unknown loss function '{name}' (loss functions: "
                                  f"{', '.join(LOSS_FUNCTIONS)}; and the expression functions "
                                  f"{', '.join(sorted(E.DEFAULT_FUNCTIONS))})")
    if port_shape is not None:
        code = _resolve_axis_names(body, code, ports, port_shape)
    return CompiledLoss(text, code, ports)


def _resolve_axis_names(body: ast.expr, code: str, ports: list, port_shape) -> str:
    """Replace axis names in ``mean``/``sum`` calls by numbers read from declared port shapes."""
    tree = copy.deepcopy(body)
    changed = False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _REDUCTIONS and node.args):
            continue
        dim_node = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "dim"), None)
        items = dim_node.elts if isinstance(dim_node, (ast.List, ast.Tuple)) else [dim_node]
        refs = [ports[int(m.group(1))] for n in ast.walk(node.args[0]) if isinstance(n, ast.Name)
                for m in [_PLACEHOLDER.match(n.id)] if m]
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                item.value = _axis_number(item.value, refs, port_shape, node.func.id)
                changed = True
    return ast.unparse(tree) if changed else code


def _axis_number(name: str, refs: list, port_shape, fn: str) -> int:
    found = {}
    for block, port in refs:
        shape = port_shape(block, port)
        if shape is None or name not in shape:
            continue
        pos = shape.index(name)
        after_ellipsis = ELLIPSIS in shape and shape.index(ELLIPSIS) < pos
        found[f"{block}.{port}"] = pos - len(shape) if after_ellipsis else pos
    described = ", ".join(f"{b}.{p} {_shape_text(port_shape(b, p))}" for b, p in refs) or "no port"
    if not found:
        raise ExpressionError(f"{fn}(): axis '{name}' is not declared by {described}")
    if len(set(found.values())) > 1:
        raise ExpressionError(f"{fn}(): axis '{name}' sits at different positions in {described}; "
                              f"give its number")
    return next(iter(found.values()))


def _shape_text(shape) -> str:
    return "(*)" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"
