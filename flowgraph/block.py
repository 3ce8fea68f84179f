"""Typed blocks: ports, params and the Block base class.

A block is a ``torch.nn.Module`` with a declared contract::

    @register("channel.awgn")
    class AWGN(Block):
        '''y = x + n, n ~ CN(0, N0), N0 = 10^(-snr_db/10) (DESIGN.md conventions).'''
        inputs = {"x": Port("complex", ("B", "...") )}
        outputs = {"y": Port("complex", ("B", "..."))}
        params = {"snr_db": Param(float, 10.0, "Es/N0 in dB", runtime=True)}

        def forward(self, x):
            ...
            return {"y": y}

Shapes are tuples of symbolic names (``"B"``, ``"Nt"``), integers, and at most one
``"..."`` that stands for any number of trailing/middle dimensions. Symbols are local
to a block instance; the validator unifies them across connections, so a mismatch is
reported before anything runs. ``bind_dims`` lets a block tie symbols to its params
(e.g. ``Nt`` to ``params.nt``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

import torch
from torch import nn

from .errors import brief

KINDS = ("real", "complex", "int", "bool", "any")

#: Known stages, in signal-flow order (the GUI palette groups by these).
STAGES = ("source", "extractor", "csirs", "estimator", "precoder", "channel",
          "combiner", "decoder", "sink", "classical", "tensor")

ELLIPSIS = "..."

_REQUIRED = object()


def tensor_kind(t: torch.Tensor) -> str:
    """Dtype kind of a tensor: real, complex, int or bool."""
    if t.dtype == torch.bool:
        return "bool"
    if t.is_complex():
        return "complex"
    if t.is_floating_point():
        return "real"
    return "int"


@dataclass(frozen=True)
class Port:
    """A typed tensor port.

    kind:  dtype kind: "real", "complex", "int", "bool" or "any".
    shape: symbolic shape, e.g. ("B", "Nt", "T"); ``None`` accepts any shape.
    tag:   optional semantic tag (image, csi, symbols, bits, logits, mask, scalar, label).
    optional: an input that may be left unconnected (``forward`` then gets ``None``).
    """
    kind: str = "real"
    shape: tuple | None = None
    tag: str | None = None
    doc: str = ""
    optional: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Port kind must be one of {KINDS}, not {self.kind!r}")
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            if sum(d == ELLIPSIS for d in self.shape) > 1:
                raise ValueError("a port shape may hold at most one '...'")

    def shape_str(self) -> str:
        if self.shape is None:
            return "(*)"
        return "(" + ",".join(str(d) for d in self.shape) + ")"

    def describe(self) -> dict:
        return {"kind": self.kind, "shape": None if self.shape is None else list(self.shape),
                "tag": self.tag, "optional": self.optional, "doc": self.doc}


@dataclass(frozen=True)
class Param:
    """A typed, documented block parameter.

    type:    float, int, bool, str, list or dict (an int is accepted where float is asked).
    default: the default; leave it out to make the param required.
    runtime: the value may change between frames without rebuilding the block
             (e.g. ``snr_db`` redrawn per batch, or moved by a GUI slider).
    choices: allowed values, if the param is an enumeration.
    named:   words accepted besides values of ``type``: a rule the block resolves itself
             when the number depends on other params (RZF ``alpha: mmse`` = K/P).
    """
    type: type = float
    default: Any = _REQUIRED
    doc: str = ""
    runtime: bool = False
    choices: tuple | None = None
    named: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value) -> str | None:
        """Return a reason string if ``value`` does not fit this param, else None."""
        t = self.type
        if isinstance(value, str) and value in self.named:
            return None
        ok = (isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))) \
            or (t is float and isinstance(value, int) and not isinstance(value, bool))
        if t is list and isinstance(value, tuple):
            ok = True
        if not ok:
            also = "".join(f" or '{w}'" for w in self.named)
            return f"expects {t.__name__}{also}, got {type(value).__name__} {brief(value)}"
        if t is float and not math.isfinite(float(value)):
            return f"expects a finite float, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {brief(value)}"
        return None

    def coerce(self, value):
        if self.type is float and isinstance(value, int):
            return float(value)
        if self.type is list and isinstance(value, tuple):
            return list(value)
        return value

    def describe(self) -> dict:
        return {"type": self.type.__name__,
                "default": None if self.required else self.default,
                "required": self.required, "runtime": self.runtime,
                "choices": None if self.choices is None else list(self.choices),
                "named": list(self.named), "doc": self.doc}


class ParamValues(dict):
    """Resolved params of one block instance, readable as attributes (``self.p.snr_db``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def resolve_params(cls, given: Mapping[str, Any], where: str = "") -> ParamValues:
    """Fill defaults, check types; raise ValueError naming the first bad param."""
    values = ParamValues()
    for name in given:
        if name not in cls.params:
            raise ValueError(f"{where}unknown param '{name}' for {cls.type_id}")
    for name, spec in cls.params.items():
        if name in given:
            reason = spec.check(given[name])
            if reason:
                raise ValueError(f"{where}param '{name}' {reason}")
            values[name] = spec.coerce(given[name])
        elif spec.required:
            raise ValueError(f"{where}missing required param '{name}' for {cls.type_id}")
        else:
            values[name] = spec.default
    return values


class Block(nn.Module):
    """Base class of every block.

    Subclasses declare ``inputs``, ``outputs`` (dicts of :class:`Port`) and ``params``
    (dict of :class:`Param`) and implement ``forward(**inputs) -> {port: tensor}``.
    Resolved params are at ``self.p``. ``self.publish(name, tensor)`` exposes an
    internal tensor (an attention mask, say) as a named tap; it costs one attribute
    check when nobody listens.
    """
    type_id: ClassVar[str] = ""
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    params: ClassVar[dict[str, Param]] = {}
    #: names of internal taps this block may publish (documentation and GUI menus)
    taps: ClassVar[dict[str, str]] = {}
    #: input port whose complex elements per example are channel uses (channel blocks)
    channel_input: ClassVar[str | None] = None

    def __init__(self, **params):
        super().__init__()
        self.p = resolve_params(type(self), params)
        self.name = self.type_id
        self._publish = None   # set by the scheduler when a tap subscriber exists

    @classmethod
    def bind_dims(cls, p: Mapping[str, Any]) -> dict[str, int]:
        """Bind symbolic dims of this block's ports to values derived from params."""
        return {}

    @classmethod
    def fixed_image_size(cls, p: Mapping[str, Any]) -> tuple[int, int] | None:
        """(H, W) when this block, built with params ``p``, works on images of that one size
        only (Swin windows, a linear head over a fixed feature map); None when it takes any
        size that :meth:`size_multiple` divides. Default: the sizes ``bind_dims`` gives the
        last two dims of an image-tagged port. Validation refuses such a block downstream of
        a source that evaluates whole images (``flowgraph/imagesize.py``)."""
        try:
            dims = cls.bind_dims(p)
        except Exception:       # bad params are reported where the block is added
            return None
        for port in (*cls.inputs.values(), *cls.outputs.values()):
            if port.tag != "image" or not port.shape or len(port.shape) < 2 or ELLIPSIS in port.shape[-2:]:
                continue
            h, w = (d if isinstance(d, int) else dims.get(d) for d in port.shape[-2:])
            if isinstance(h, int) and isinstance(w, int):
                return h, w
        return None

    @classmethod
    def size_multiple(cls, p: Mapping[str, Any]) -> int:
        """What image height and width must be multiples of for this block (its total
        stride: 4 for DeepJSCC's two stride-2 layers); 1 when anything goes."""
        return 1

    @classmethod
    def stage(cls) -> str:
        return cls.type_id.split(".", 1)[0]

    def publish(self, tap: str, tensor: torch.Tensor) -> None:
        if self._publish is not None:
            self._publish(self.name, tap, tensor)

    def needed_inputs(self) -> set[str] | None:
        """Inputs this block reads with its current params; None (the default) means all.

        A training stage runs only what its loss needs (``Scheduler.subplan``); a block whose
        mode ignores some inputs (a denoiser switched off, say) returns the others here, so
        the blocks feeding only the ignored inputs do not run. Inputs left out receive None.
        """
        return None

    def set_runtime(self, name: str, value) -> None:
        """Change a runtime param between frames (the scheduler calls this)."""
        spec = self.params[name]
        reason = spec.check(value)
        if reason:
            raise ValueError(f"block '{self.name}': param '{name}' {reason}")
        self.p[name] = spec.coerce(value)

    @classmethod
    def describe(cls) -> dict:
        return {"type": cls.type_id, "stage": cls.stage(),
                "doc": (cls.__doc__ or "").strip(),
                "inputs": {k: v.describe() for k, v in cls.inputs.items()},
                "outputs": {k: v.describe() for k, v in cls.outputs.items()},
                "params": {k: v.describe() for k, v in cls.params.items()},
                "taps": dict(cls.taps)}


class Source(Block):
    """A block that produces data with no inputs (images, labels).

    ``forward()`` returns the next training batch. ``eval_batches(batch, split)`` yields a
    held-out split exactly once, deterministically: ``split="test"``, or ``"val"``, a
    validation split disjoint from train and test where the dataset has one (otherwise a
    one-line SemflowError naming the block). ``num_eval_examples(split)`` is its size and
    ``dataset_info`` says what it is (dataset, path, split, count). Random state lives in
    ``self.generator`` and is saved in checkpoints, so resumed runs draw the same data.
    """

    def __init__(self, **params):
        super().__init__(**params)
        self.generator = torch.Generator().manual_seed(0)
        self.device = torch.device("cpu")

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def eval_batches(self, batch_size: int, split: str = "test") -> Iterator[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def num_eval_examples(self, split: str = "test") -> int:
        raise NotImplementedError

    @property
    def dataset_info(self) -> dict:
        """What the held-out numbers are measured on: {dataset, path, split, count, ...}."""
        return {"dataset": self.type_id, "path": "", "split": "test", "count": self.num_eval_examples()}

    def source_values_per_example(self) -> int | None:
        """Real source values per example (H*W*3 for images), used for the CBR."""
        return None

    def source_values_in(self, data: dict) -> int | None:
        """Real source values per example of one evaluation batch ``data`` (its outputs).
        Sources whose held-out examples differ in size (whole images) count them here, so
        the CBR is computed per image; the default is ``source_values_per_example()``."""
        return self.source_values_per_example()

    @classmethod
    def eval_whole_images(cls, p: Mapping[str, Any]) -> int | None:
        """None when held-out images have the training size (``bind_dims``); an int m when
        evaluation yields whole images of their own sizes, height and width multiples of m.
        Then validation checks every block downstream takes any size, and the scheduler does
        not hold the evaluation outputs to the bound H and W (``flowgraph/imagesize.py``)."""
        return None

    def set_batch(self, n: int) -> None:
        """Change the training batch size between frames (a train stage's ``batch:``); the
        run restores the graph's value after the stage. Sets ``self.p["batch"]``: a source
        that builds anything from its batch size overrides this to rebuild it."""
        if "batch" not in self.params:
            raise ValueError(f"source '{self.name}' ({self.type_id}) has no 'batch' param")
        if int(n) < 1:
            raise ValueError(f"source '{self.name}' ({self.type_id}): batch must be >= 1, got {n}")
        self.p["batch"] = int(n)

    def get_extra_state(self):
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state):
        if state and "generator" in state:
            self.generator.set_state(state["generator"])


class Sink(Block):
    """A metric sink: its ``value`` output holds one real number per example (B,).

    Evaluation gathers these per-example values over the held-out split, then reports
    mean and spread. ``higher_is_better``, ``unit``, ``scale`` and ``proportion`` label
    tables and plots and choose the interval.

    Set-level metrics (a dataset mIoU from a confusion matrix, a Fréchet distance) add an
    output port ``"stats"`` (real or int, ``("B", ...)``: additive per-example statistics
    or per-example features) and implement :meth:`reduce_stats`. Evaluation concatenates
    ``stats`` along dim 0 over every example of one sweep point (all batches and repeats)
    and reports ``reduce_stats(stats)`` as the column ``<block name>_<set_suffix>``.
    """
    outputs = {"value": Port("real", ("B",), tag="scalar", doc="metric per example")}
    higher_is_better: ClassVar[bool] = True
    unit: ClassVar[str] = ""
    #: computed on training log steps (set False for costly metrics such as MS-SSIM)
    log_in_training: ClassVar[bool] = True
    #: y axis of plots: "log" for error rates and NMSE, else "linear"
    scale: ClassVar[str] = "linear"
    #: values are success/failure rates in [0, 1]: the 95% CI is a Wilson interval
    proportion: ClassVar[bool] = False
    #: the set-level column is ``f"{block name}_{set_suffix}"`` (sinks with a "stats" port)
    set_suffix: ClassVar[str] = "set"
    #: False: ``value`` is no meaningful per-example number (FID); only the set column is reported
    per_example: ClassVar[bool] = True
    #: evaluation adds a seeded bootstrap 95% CI over examples to the set-level value
    set_bootstrap: ClassVar[bool] = True

    @classmethod
    def has_set_metric(cls) -> bool:
        return "stats" in cls.outputs

    def reduce_stats(self, stats: torch.Tensor) -> float:
        """Reduce the ``stats`` of every example of one evaluation point to one number."""
        raise NotImplementedError(f"{type(self).__name__} declares a 'stats' port but no reduce_stats")

    def reduce_stats_resampled(self, stats: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
        """Optional, for speed: ``reduce_stats(stats[index[r]])`` for every bootstrap resample r
        at once, index (R, N) row indices -> (R,). None (the default): evaluation calls
        ``reduce_stats`` once per resample. ``flowgraph.stats.resample_weights`` turns the
        index into draw counts, so additive statistics reduce with one matrix product."""
        return None
