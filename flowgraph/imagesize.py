"""Image sizes in evaluation: whole images, tiles and uint8 scoring (issue 20).

Numbers that can sit next to a paper's need the paper's test images at their own size:

* **Whole images.** A source whose ``eval_whole_images(p)`` is an int m yields held-out
  images at their own sizes (height and width multiples of m), a batch holding images of
  one size. Validation (:func:`check_image_sizes`) refuses, in one line per block, every
  block downstream of that source that works at one size only (``Block.fixed_image_size``:
  Swin windows, fixed linear heads, a decoder whose params fix H and W), and every block
  whose stride m does not divide (``Block.size_multiple``). The scheduler does not hold
  such a source's evaluation outputs to the H and W its params bind (those are the
  training crops).
* **Tiles** (``evaluate.tile: t``): every held-out image is cut into t x t tiles, row-major,
  that pass through the graph as independent examples (their own channel and noise draws);
  each image-shaped input of a metric sink is reassembled before scoring, so the metrics
  describe whole images: the PSNR of a tiled image is 10 log10(1 / its MSE over all its
  pixels), not a mean over tiles. Source outputs without the image's H x W (a class label)
  are repeated for every tile. The CBR counts the channel uses of all tiles of an image.
* **uint8 scoring** (``evaluate.quantize: uint8``): image inputs of sinks that do not come
  straight from a source (the reconstructions) are clamped to [0, 1] and rounded to
  multiples of 1/255 before scoring, as papers do when they save reconstructions as 8-bit
  images. References from a source are 8-bit images already.
"""
from __future__ import annotations

import torch

from .block import Sink, Source
from .errors import SemflowError
from .graph import Problem

QUANTIZE = ("none", "uint8")


def image_size_symbols(cls) -> set:
    """The symbols of the last two dims (H, W) of a block's image-tagged output ports."""
    out = set()
    for port in cls.outputs.values():
        if port.tag == "image" and port.shape and len(port.shape) >= 2:
            out |= {d for d in port.shape[-2:] if isinstance(d, str)}
    return out


# ---- validation ------------------------------------------------------------------------------------
def _downstream(cg, start: str) -> list:
    """Blocks reachable from ``start`` along connections, in execution order (start excluded)."""
    reach, stack = set(), [start]
    while stack:
        n = stack.pop()
        for s, _, d, _ in cg.edges:
            if s == n and d not in reach:
                reach.add(d)
                stack.append(d)
    return [n for n in cg.order if n in reach]


def _side(hw) -> str:
    return f"{hw[0]}×{hw[1]}"


def check_image_sizes(cg, tile: int, tile_line: int) -> list:
    """Problems of a graph whose evaluation images differ from its training crops: whole
    images through blocks built for one size, tiles of a size the blocks do not take."""
    sources = [n for n in cg.order if issubclass(cg.blocks[n].cls, Source)]
    if not sources:
        return []
    src = cg.blocks[sources[0]]           # the source that drives evaluation (Scheduler.source)
    multiple = src.cls.eval_whole_images(src.params)
    if not tile and multiple is None:
        return []                         # evaluation images are the training crops
    problems = []
    if tile and multiple is not None and multiple % tile:
        problems.append(Problem(src.file, src.line, f"block '{src.name}' ({src.type_id}) crops whole images "
                                f"to multiples of {multiple} px, so evaluate.tile: {tile} cannot cut them into "
                                f"{tile}×{tile} tiles: set its eval_multiple to a multiple of {tile}", src.name))
    elif tile and multiple is None:
        hw = src.cls.fixed_image_size(src.params)
        if hw is not None and (hw[0] % tile or hw[1] % tile):
            problems.append(Problem(cg.spec.path, tile_line, f"evaluate.tile: {tile} does not divide the "
                                    f"{_side(hw)} images of block '{src.name}' ({src.type_id})", src.name))
    why = (f"evaluate.tile: {tile} feeds {tile}×{tile} tiles" if tile else
           f"block '{src.name}' ({src.type_id}) evaluates whole images of their own sizes (eval_whole)")
    for name in _downstream(cg, src.name):
        rb = cg.blocks[name]
        hw = rb.cls.fixed_image_size(rb.params)
        m = rb.cls.size_multiple(rb.params)
        if tile and hw is not None and hw != (tile, tile):
            problems.append(Problem(rb.file, rb.line, f"block '{name}' ({rb.type_id}) works on {_side(hw)} images "
                                    f"only, but {why}", name))
        elif not tile and hw is not None:
            problems.append(Problem(rb.file, rb.line, f"block '{name}' ({rb.type_id}) works on {_side(hw)} images "
                                    f"only (its params fix H and W), but {why}: use evaluate.tile: {hw[0]} "
                                    f"or a block that takes any size", name))
        elif m > 1 and (tile or multiple) % m:
            have = f"{tile}×{tile} tiles" if tile else f"images whose sides are multiples of {multiple} px"
            problems.append(Problem(rb.file, rb.line, f"block '{name}' ({rb.type_id}) needs image sides that are "
                                    f"multiples of {m}, but gets {have}"
                                    + ("" if tile else f": set eval_multiple: {m} on block '{src.name}'"), name))
    return problems


# ---- tiles -----------------------------------------------------------------------------------------
def split_tiles(data: dict, hw: tuple, t: int, where: str) -> tuple[dict, int]:
    """Cut every tensor of a source batch whose last two dims are the image's (H, W) into
    t x t tiles, row-major, tiles of one image consecutive: (B, ..., H, W) -> (B*T, ..., t, t);
    repeat the others T times along dim 0. Returns the tiled batch and T."""
    h, w = hw
    if h % t or w % t:
        raise SemflowError(f"evaluate.tile: {t}: {where} yields a {h}×{w} image, not a whole number of "
                           f"{t}×{t} tiles (crop whole images with eval_multiple: {t})")
    nh, nw = h // t, w // t
    out = {}
    for k, v in data.items():
        if v.dim() >= 3 and tuple(v.shape[-2:]) == (h, w):
            b, mid = v.shape[0], v.shape[1:-2]
            x = v.reshape(b, *mid, nh, t, nw, t)
            k_mid = len(mid)
            # (B, mid..., nh, t, nw, t) -> (B, nh, nw, mid..., t, t)
            perm = (0, k_mid + 1, k_mid + 3, *range(1, k_mid + 1), k_mid + 2, k_mid + 4)
            out[k] = x.permute(perm).reshape(b * nh * nw, *mid, t, t)
        else:
            out[k] = v.repeat_interleave(nh * nw, dim=0)
    return out, nh * nw


def join_tiles(v: torch.Tensor, b: int, hw: tuple, t: int) -> torch.Tensor:
    """Inverse of :func:`split_tiles` for one tensor: (B*T, ..., t, t) -> (B, ..., H, W)."""
    nh, nw = hw[0] // t, hw[1] // t
    mid = v.shape[1:-2]
    k_mid = len(mid)
    x = v.reshape(b, nh, nw, *mid, t, t)
    # (B, nh, nw, mid..., t, t) -> (B, mid..., nh, t, nw, t)
    perm = (0, *range(3, 3 + k_mid), 1, 3 + k_mid, 2, 4 + k_mid)
    return x.permute(perm).reshape(b, *mid, hw[0], hw[1])


def quantize_uint8(v: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as an 8-bit file would store them: clamp, round to multiples of 1/255."""
    return torch.round(v.clamp(0.0, 1.0) * 255.0) / 255.0


# ---- evaluation frames -----------------------------------------------------------------------------
class EvalFrames:
    """One evaluation frame through a scheduler, with tiles and uint8 scoring when asked.

    Without either it is ``sch(inject={source: data})``. With them the frame runs in two
    parts: every block but the metric sinks on the (tiled) batch, then the sinks on inputs
    reassembled into whole images (and quantised). ``plan``: the steps to run (all when None;
    ``Scheduler.subplan`` for named metrics)."""

    def __init__(self, sch, source, tile: int = 0, quantize: str = "none", plan: list | None = None):
        self.sch, self.src, self.tile, self.plan = sch, source, int(tile or 0), plan
        self.quantize = quantize == "uint8"
        self.active = bool(self.tile or self.quantize)
        self.tiles = 1                       # tiles per image in the last frame
        if not self.active:
            return
        steps = plan if plan is not None else sch.plan
        sinks = {s.name for s in steps if isinstance(s.module, Sink)}
        self.head = [s for s in steps if s.name not in sinks]
        self.tail = [s for s in steps if s.name in sinks]
        made_by_sinks = {key: s.name for s in self.tail for _, key in s.outputs}
        for s in self.head:
            for _, key in s.bindings:
                if key in made_by_sinks:
                    raise SemflowError(f"evaluate.tile/quantize: block '{s.name}' reads '{key}', an output of "
                                       f"metric sink '{made_by_sinks[key]}'; sinks must come last")
        sources = {s.name for s in sch.plan if s.is_source}
        self.feeds: dict = {}                # sink input key -> (sink, port, is an image, from a source)
        for s in self.tail:
            for arg, key in s.bindings:
                if key is None:
                    continue
                image = type(s.module).inputs[arg].tag == "image"
                if key in self.feeds:             # one output read by several sinks
                    first = self.feeds[key]
                    self.feeds[key] = (*first[:2], first[2] or image, first[3])
                else:
                    self.feeds[key] = (s.name, arg, image, key.rsplit(".", 1)[0] in sources)
        self.image_ports = [p for p, spec in type(source).outputs.items() if spec.tag == "image"]

    def __call__(self, data: dict) -> dict:
        if not self.active:
            self.tiles = 1
            return self.sch(inject={self.src.name: data}, plan=self.plan)
        b = int(next(iter(data.values())).shape[0])
        hw = None
        if self.tile:
            if not self.image_ports or self.image_ports[0] not in data:
                raise SemflowError(f"evaluate.tile: block '{self.src.name}' ({self.src.type_id}) has no image output")
            hw = tuple(data[self.image_ports[0]].shape[-2:])
            data, self.tiles = split_tiles(data, hw, self.tile, f"block '{self.src.name}'")
        out = self.sch(inject={self.src.name: data}, plan=self.head)
        for key, (sink, port, image, from_source) in self.feeds.items():
            v = out[key]
            if self.tile:
                if v.shape[0] != b * self.tiles or v.dim() < 3 or tuple(v.shape[-2:]) != (self.tile, self.tile):
                    raise SemflowError(f"evaluate.tile: {self.tile}: sink '{sink}' input '{port}' gets {key} of shape "
                                       f"{tuple(v.shape)}, not {self.tile}×{self.tile} tiles of {b} image(s); "
                                       f"tiled evaluation scores images only")
                v = join_tiles(v, b, hw, self.tile)
            if self.quantize and image and not from_source:
                v = quantize_uint8(v)
            out[key] = v
        return self.sch(plan=self.tail, values=out)
