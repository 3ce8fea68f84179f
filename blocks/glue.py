"""Small generic glue blocks: random bit/symbol sources, the ``tensor.*`` utilities, a
given-channel application, a per-stream noise helper and a mean sink.

They carry no paper-specific physics; they let the PHY graphs (``graphs/phy/``,
``graphs/baselines/jpeg_*.yaml``) and the paper systems wire the block families together:

    source.bits               i.i.d. 0/1 bits (B, ..., N) for coded-modulation experiments
    source.symbols            i.i.d. unit-energy QAM (or Gaussian) symbols (B, ...)
    tensor.reshape            per-example reshape, C (row-major) or F (column-major = interleave)
    tensor.permute            axis permutation, batch axis fixed (OFDM <-> per-RE matrix layout)
    tensor.group              (B, ...) -> (B/G, G, ...): G consecutive examples share one frame
    tensor.ungroup            (B, G, ...) -> (B*G, ...): the inverse of tensor.group
    tensor.zeros              a zero tensor (B, *shape) shaped by any batch tensor (a dummy input)
    tensor.stream_map/unmap   real codeword <-> Nt complex streams (seed 000 eq. 1)
    tensor.concat / split     join / cut along a per-example axis (seed 004 symbol assembly)
    tensor.matmul             batched matrix product with broadcasting (effective channel H W)
    tensor.effective_channel  H W per resource element in the OFDM layout
    channel.apply             y = H x + n with a GIVEN channel h (closed-loop data phase)
    combiner.stream_noise     N0 / ||H w_i||^2: noise variance of interference-free streams
    sink.mean                 mean of any per-example tensor (failure rates, JPEG quality, ...)

The tensor utilities were filed under ``csirs.*`` before; those ids still work for one
graph-format version (``DEPRECATED_IDS``) and ``semflow validate`` prints a note per use.

Random sources (``blocks.sources.SeededRandomSource``): training batches draw from
``self.generator`` (seeded by the run and saved in checkpoints); each held-out split ('test',
'val') is ``num_eval_examples`` examples drawn from generators seeded with ``eval_seed`` in
chunks of ``EVAL_CHUNK`` examples, so example i is the same for every run seed and every
evaluation batch size.
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Block, Param, Port, Sink, tensor_kind
from flowgraph.registry import deprecate, register

from .sources import EVAL_CHUNK, SeededRandomSource  # noqa: F401  (EVAL_CHUNK: documented here)


def _shape_list(where: str, shape, allow_minus_one: bool = False) -> list[int]:
    out = [int(s) for s in shape]
    if allow_minus_one:
        if sum(s == -1 for s in out) > 1 or any(s == 0 or s < -1 for s in out):
            raise ValueError(f"{where}: shape {out} needs positive sizes and at most one -1")
    elif not out or any(s < 1 for s in out):
        raise ValueError(f"{where}: shape {out} must be a non-empty list of positive sizes")
    return out


class _RandomSource(SeededRandomSource):
    """The i.i.d. random sources: one output of per-example shape ``shape`` (see the module doc)."""
    output_name = "x"

    def __init__(self, **params):
        super().__init__(**params)
        self.shape = _shape_list(self.type_id, self.p.shape)
        for k in ("batch", "num_eval_examples"):
            if self.p[k] < 1:
                raise ValueError(f"{self.type_id}: param '{k}' must be >= 1, got {self.p[k]}")

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, n, g):
        return {self.output_name: self.sample(n, g)}

    def source_values_per_example(self):
        return None      # not images: no CBR


def _source_params(shape_default: list, shape_doc: str) -> dict:
    return {"shape": Param(list, shape_default, shape_doc),
            "batch": Param(int, 16, "training batch size B of forward()"),
            "num_eval_examples": Param(int, 1024, "size of each held-out split, test and val (examples)"),
            "eval_seed": Param(int, 1234, "seed of the held-out splits (independent of the run seed)")}


@register("source.bits")
class Bits(_RandomSource):
    """I.i.d. equiprobable bits, real 0.0/1.0 (the payload convention of ``classical.ldpc_encode``,
    ``classical.qam_map`` and ``sink.ber``/``sink.bler``).

    Held-out splits 'test' and 'val': ``num_eval_examples`` examples each from generators
    seeded with ``eval_seed`` (chunks of 256 examples, so example i does not depend on the
    batch size or the run seed).

    Shapes: -> bits real (B, *shape), e.g. shape [512] gives (B, 512) and [K, N] gives (B, K, N);
            the last dim binds N.
    """
    inputs = {}
    outputs = {"bits": Port("real", ("B", "...", "N"), tag="bits", doc="0/1 bits, float32")}
    params = _source_params([512], "per-example shape; the last dim is N (e.g. LDPC payload bits)")
    output_name = "bits"

    @classmethod
    def bind_dims(cls, p):
        return {"N": int(p["shape"][-1])} if p["shape"] else {}

    def sample(self, n, g):
        return torch.randint(0, 2, (n, *self.shape), generator=g).float()


def qam_levels(bits_per_symbol: int) -> torch.Tensor:
    """Square-QAM constellation (2^m points) with unit average energy; m even >= 2."""
    side = 2 ** (bits_per_symbol // 2)
    pam = torch.arange(side, dtype=torch.float32) * 2 - (side - 1)
    pts = (pam[:, None] + 1j * pam[None, :]).reshape(-1).to(torch.complex64)
    return pts / math.sqrt(2.0 * (side * side - 1) / 3.0)


@register("source.symbols")
class Symbols(_RandomSource):
    """I.i.d. complex symbols with average energy ``energy``: uniform square QAM
    (``bits_per_symbol`` m even: 2 = QPSK, 4 = 16QAM, ...) or, with m = 0, Gaussian CN(0, energy).

    For rate/precoding experiments that need unit-energy streams s (precoders expect E|s|^2 = 1)
    or a sounding input for a channel (energy 1/Nt per antenna gives total energy 1 per RE).
    Held-out split as ``source.bits``.

    Shapes: -> x complex (B, *shape), e.g. [K, S, F] for an OFDM user grid.
    """
    inputs = {}
    outputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="random symbols")}
    params = {**_source_params([4, 14, 64], "per-example shape, e.g. [K, S, F]"),
              "bits_per_symbol": Param(int, 2, "m: square QAM with 2^m points (even m >= 2); "
                                                "0 = Gaussian CN(0, energy)"),
              "energy": Param(float, 1.0, "average energy per symbol")}

    def __init__(self, **params):
        super().__init__(**params)
        m = self.p.bits_per_symbol
        if m != 0 and (m < 2 or m % 2):
            raise ValueError(f"source.symbols: bits_per_symbol must be 0 or even >= 2, got {m}")
        if self.p.energy < 0:
            raise ValueError("source.symbols: energy must be >= 0")

    def sample(self, n, g):
        m, scale = self.p.bits_per_symbol, math.sqrt(self.p.energy)
        if m == 0:
            ab = torch.randn(n, *self.shape, 2, generator=g)
            return torch.view_as_complex(ab) * (scale / math.sqrt(2.0))
        pts = qam_levels(m)
        idx = torch.randint(0, len(pts), (n, *self.shape), generator=g)
        return pts[idx] * scale


# --------------------------------------------------------------------------- tensor utilities

@register("tensor.reshape")
class Reshape(Block):
    """Per-example reshape (the batch axis is kept): x (B, ...) -> x (B, *shape).

    ``order: C`` reads and writes elements row-major (torch.reshape); ``order: F`` column-major
    (numpy order="F"). F order is a block interleaver: (B, N) -> [S, -1] puts element n on
    row n mod S, column n // S (symbols dealt round-robin over S streams), and the same block
    with ``shape: [-1]`` and F order on (B, S, T) undoes it. One -1 is inferred.
    Differentiable (a view/copy).

    Shapes: x any (B, ...) -> x any (B, *shape), same number of elements per example.
    """
    inputs = {"x": Port("any", ("B", "..."), doc="any tensor")}
    outputs = {"x": Port("any", ("B", "..."), doc="reshaped")}
    params = {"shape": Param(list, [-1], "per-example output shape (one -1 is inferred)"),
              "order": Param(str, "C", "C: row-major; F: column-major (interleaver)",
                             choices=("C", "F"))}

    def __init__(self, **params):
        super().__init__(**params)
        self.shape = _shape_list("tensor.reshape", self.p.shape, allow_minus_one=True)

    def forward(self, x):
        b = x.shape[0]
        if self.p.order == "C":
            return {"x": x.reshape(b, *self.shape)}
        n = x[0].numel()
        known = math.prod(s for s in self.shape if s != -1)
        if (-1 in self.shape and n % known) or (-1 not in self.shape and n != known):
            raise ValueError(f"tensor.reshape: {n} elements per example do not fit shape {self.shape}")
        shape = [n // known if s == -1 else s for s in self.shape]
        rev = lambda t: t.permute(0, *range(t.dim() - 1, 0, -1))   # noqa: E731  reverse example axes
        return {"x": rev(rev(x).reshape(b, *shape[::-1])).contiguous()}


@register("tensor.permute")
class Permute(Block):
    """Permute axes, the batch axis staying first: x (B, d1, ..., dn) -> x.permute(dims).

    ``dims`` lists every axis of the tensor as in torch.permute and must start with 0. E.g.
    [0, 3, 4, 1, 2] turns an OFDM channel h (B, K, Nt, S, F) into the per-resource-element
    matrix layout (B, S, F, K, Nt) of the flat precoders and rate sinks, and a precoder
    matrix (B, Nt, K, S, F) into (B, S, F, Nt, K). Differentiable; the result is contiguous.

    Shapes: x any (B, ...) of rank len(dims) -> x any (B, ...) permuted.
    """
    inputs = {"x": Port("any", ("B", "..."), doc="any tensor")}
    outputs = {"x": Port("any", ("B", "..."), doc="permuted")}
    params = {"dims": Param(list, [0, 2, 1], "permutation of all axes, starting with 0 (batch)")}

    def __init__(self, **params):
        super().__init__(**params)
        d = [int(i) for i in self.p.dims]
        if sorted(d) != list(range(len(d))) or not d or d[0] != 0:
            raise ValueError(f"tensor.permute: dims {d} must permute 0..{len(d) - 1} with 0 first")
        self.dims = d

    def forward(self, x):
        if x.dim() != len(self.dims):
            raise ValueError(f"tensor.permute: dims {self.dims} need rank {len(self.dims)}, "
                             f"got {tuple(x.shape)}")
        return {"x": x.permute(*self.dims).contiguous()}


@register("tensor.group")
class Group(Block):
    """Group ``size`` consecutive examples into one frame: x (B, ...) -> x (B/size, size, ...).

    For multi-user frames fed by a one-example-per-user source: e.g. 4 consecutive images
    become the 4 users' payloads of one MU-MIMO OFDM slot; ``tensor.ungroup`` restores one
    example per user before the metric sinks, so per-image metrics stay per image.
    CHANGES THE BATCH SIZE between its input and output: B must be a multiple of ``size``
    (choose evaluation batches and held-out sizes accordingly). Differentiable (a view).

    Shapes: x any (B, ...) -> x any (B/G, G, ...), G = size.
    """
    inputs = {"x": Port("any", ("B", "..."), doc="one example per user")}
    outputs = {"x": Port("any", ("Bg", "G", "..."), doc="G examples per frame")}
    params = {"size": Param(int, 4, "examples per frame G")}

    @classmethod
    def bind_dims(cls, p):
        return {"G": int(p["size"])}

    def forward(self, x):
        g = int(self.p.size)
        if g < 1 or x.shape[0] % g:
            raise ValueError(f"tensor.group: batch {x.shape[0]} is not a multiple of size {g} "
                             f"(make the evaluation batch and example count multiples of {g})")
        return {"x": x.reshape(x.shape[0] // g, g, *x.shape[1:])}


@register("tensor.ungroup")
class Ungroup(Block):
    """Inverse of ``tensor.group``: x (B, G, ...) -> x (B*G, ...), frame-major order.

    CHANGES THE BATCH SIZE. Differentiable (a view).

    Shapes: x any (B, G, ...) -> x any (B*G, ...).
    """
    inputs = {"x": Port("any", ("B", "G", "..."), doc="G examples per frame")}
    outputs = {"x": Port("any", ("Bu", "..."), doc="one example per user")}

    def forward(self, x):
        if x.dim() < 2:
            raise ValueError(f"tensor.ungroup: needs (B, G, ...), got {tuple(x.shape)}")
        return {"x": x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])}


@register("tensor.zeros")
class Zeros(Block):
    """A complex zero tensor (B, *shape) whose batch size and device come from ``ref``.

    A dummy input for blocks that need a tensor only for its shape, e.g. the sounding input of
    a 38.901 channel block that is run only to draw the channel ``h`` of a closed-loop frame
    (``add_noise: false``; ``channel.apply`` then sends the precoded signal through that h).

    Shapes: ref any (B, ...) -> x complex (B, *shape).
    """
    inputs = {"ref": Port("any", ("B", "..."), doc="any batch tensor: gives B and device")}
    outputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="zeros, complex64")}
    params = {"shape": Param(list, [4, 14, 64], "per-example shape, e.g. [Nt, S, F]")}

    def __init__(self, **params):
        super().__init__(**params)
        self.shape = _shape_list("tensor.zeros", self.p.shape)

    def forward(self, ref):
        return {"x": torch.zeros(ref.shape[0], *self.shape, dtype=torch.complex64, device=ref.device)}


@register("tensor.stream_map")
class StreamMap(Block):
    """Real codeword -> Nt complex streams, the reshape of seed 000 (LCFSC) eq. (1): y in C^(Nt x CL/Nt).

    Each example's real values are flattened in C order (v), consecutive pairs become one
    complex channel symbol c[n] = v[2n] + j v[2n+1] (docs/conventions.md), and the L
    symbols are split row-major over the antennas: antenna a sends c[a T : (a+1) T],
    T = L / Nt. L must be a multiple of Nt. No power normalisation (``channel.power_norm``
    with power = 1/Nt after this block gives E||x_t||^2 = 1 summed over the antennas).

    Shapes: x real (B, ...) with 2 Nt T values per example -> x complex (B, Nt, T).
    """
    inputs = {"x": Port("real", ("B", "..."), doc="real codeword (any shape per example)")}
    outputs = {"x": Port("complex", ("B", "Nt", "T"), tag="symbols", doc="streams, one row per antenna")}
    params = {"nt": Param(int, 2, "transmit antennas Nt")}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"]}

    def forward(self, x):
        b = x.shape[0]
        v = x.reshape(b, -1)
        if v.shape[1] % (2 * self.p.nt):
            raise ValueError(f"tensor.stream_map: {v.shape[1]} real values per example cannot fill "
                             f"{self.p.nt} streams of complex symbols (need a multiple of 2*Nt = {2 * self.p.nt})")
        c = torch.view_as_complex(v.reshape(b, -1, 2).contiguous())
        return {"x": c.reshape(b, self.p.nt, -1)}


@register("tensor.stream_unmap")
class StreamUnmap(Block):
    """Nt complex streams -> real codeword: the inverse of ``tensor.stream_map`` (seed 000 LCFSC,
    Sec. II-B: "the received semantics are reshaped as C_L and converted to real-valued sequence").

    Rows are concatenated (antenna 0 first), each complex symbol becomes the pair
    (Re, Im), and the result is reshaped to (B, *shape); ``shape: []`` keeps it flat.

    Shapes: x complex (B, Nt, T) -> x real (B, *shape) with prod(shape) = 2 Nt T.
    """
    inputs = {"x": Port("complex", ("B", "Nt", "T"), tag="symbols", doc="per-stream estimates")}
    outputs = {"x": Port("real", ("B", "..."), doc="real codeword")}
    params = {"shape": Param(list, [], "per-example output shape, e.g. [N, c_out]; [] = flat (2 Nt T,)")}

    def forward(self, x):
        b = x.shape[0]
        v = torch.view_as_real(x.reshape(b, -1).contiguous()).reshape(b, -1)
        shape = [int(s) for s in self.p.shape]
        if shape:
            if math.prod(shape) != v.shape[1]:
                raise ValueError(f"tensor.stream_unmap: {v.shape[1]} real values per example do not fit "
                                 f"shape {shape}")
            v = v.reshape(b, *shape)
        return {"x": v}


def _example_axis(where: str, dim: int, rank: int) -> int:
    """A per-example axis (never the batch axis 0) of a rank-``rank`` tensor, as a positive index."""
    d = dim + rank if dim < 0 else dim
    if not 1 <= d < rank:
        raise ValueError(f"{where}: dim {dim} is not a per-example axis of a rank-{rank} tensor "
                         f"(the batch axis 0 cannot be used)")
    return d


@register("tensor.concat")
class Concat(Block):
    """Concatenate two to four tensors along one per-example axis: x = [a; b; c; d].

    For symbol assembly such as seed 004 (SGD-JSCC) Sec. III-B1, z = [f; o]: the image
    latent (B, 128) and the edge-map code (B, 24) share one channel use block (B, 152).
    Any kind (real, complex, int, bool), but all inputs of one kind; every axis except
    ``dim`` must agree. ``tensor.split`` undoes it. Differentiable.

    Shapes: a any (B, ...), b any (B, ...), c, d optional (B, ...) -> x any (B, ...), the
            sizes along ``dim`` added.
    """
    inputs = {"a": Port("any", ("B", "..."), doc="first part"),
              "b": Port("any", ("B", "..."), doc="second part"),
              "c": Port("any", ("B", "..."), optional=True, doc="third part (optional)"),
              "d": Port("any", ("B", "..."), optional=True, doc="fourth part (optional)")}
    outputs = {"x": Port("any", ("B", "..."), doc="concatenation")}
    params = {"dim": Param(int, -1, "per-example axis to join along (negative counts from the end; "
                                    "0, the batch axis, is refused)")}

    def forward(self, a, b, c=None, d=None):
        parts = [t for t in (a, b, c, d) if t is not None]
        kinds = {tensor_kind(t) for t in parts}
        if len(kinds) > 1:
            raise ValueError(f"tensor.concat: inputs of different kinds {sorted(kinds)}; convert first")
        dim = _example_axis("tensor.concat", self.p.dim, a.dim())
        try:
            return {"x": torch.cat(parts, dim=dim)}
        except RuntimeError:
            shapes = ", ".join(str(tuple(t.shape)) for t in parts)
            raise ValueError(f"tensor.concat: shapes {shapes} differ outside dim {self.p.dim}") from None


@register("tensor.split")
class Split(Block):
    """Split one tensor in two along a per-example axis: the inverse of ``tensor.concat``.

    ``sizes: [Na, Nb]`` along ``dim``; one of them may be -1 (the rest). E.g. seed 004
    (SGD-JSCC): the received (B, 152) symbols -> image latent a (B, 128) and edge code
    b (B, 24). For three parts chain two splits. Any kind. Differentiable (views).

    Shapes: x any (B, ...) -> a any (B, ...), b any (B, ...) (Na and Nb along dim).
    """
    inputs = {"x": Port("any", ("B", "..."), doc="tensor to split")}
    outputs = {"a": Port("any", ("B", "..."), doc="first Na entries along dim"),
               "b": Port("any", ("B", "..."), doc="the remaining Nb entries")}
    params = {"sizes": Param(list, [1, -1], "[Na, Nb]: sizes of the two parts along dim (one may be -1)"),
              "dim": Param(int, -1, "per-example axis to split (negative counts from the end)")}

    def __init__(self, **params):
        super().__init__(**params)
        sizes = _shape_list("tensor.split", self.p.sizes, allow_minus_one=True)
        if len(sizes) != 2 or sizes == [-1, -1]:
            raise ValueError(f"tensor.split: sizes {sizes} must be two sizes [Na, Nb], at most one -1")
        self.sizes = sizes

    def forward(self, x):
        dim = _example_axis("tensor.split", self.p.dim, x.dim())
        n = x.shape[dim]
        na, nb = self.sizes
        na, nb = (n - nb if na == -1 else na), (n - na if nb == -1 else nb)
        if na < 1 or nb < 1 or na + nb != n:
            raise ValueError(f"tensor.split: axis {self.p.dim} of {tuple(x.shape)} has {n} entries, "
                             f"not sizes {self.sizes}")
        a, b = torch.split(x, [na, nb], dim=dim)
        return {"a": a, "b": b}


def _matmul_operands(where: str, a, b):
    """Both operands real or complex of one dtype: a real one is promoted to the other's."""
    for t in (a, b):
        if not (t.is_floating_point() or t.is_complex()):
            raise ValueError(f"{where}: needs real or complex operands, got {t.dtype}")
    if a.is_complex() and not b.is_complex():
        return a, b.to(a.dtype)
    return a.to(b.dtype), b      # a real a meets a complex b, or two precisions of one kind


@register("tensor.matmul")
class MatMul(Block):
    """Batched matrix product over the last two axes, c = a b (e.g. an effective channel H W).

    The leading axes broadcast as in ``torch.matmul``: a singleton axis of one operand is
    repeated over the other's, so a static channel (B, 1, Nr, Nt) meets precoders of every
    OFDM symbol (B, S, Nt, K). A real operand is promoted to the other's complex dtype.
    Main use: the effective channel H_eff = H W of a precoded link, which a receive
    combiner needs to undo precoding and channel together; e.g. SVD precoding followed by
    LMMSE detection (graphs/examples/svd_mmse.yaml): a = h (B, Nr, Nt), b = w (B, Nt, S)
    -> c = H W (B, Nr, S) -> ``combiner.mmse`` with ``stream_power: 1``. Differentiable.

    Shapes: a real/complex (B, ..., M, N), b real/complex (B, ..., N, P) -> c (B, ..., M, P).
    """
    inputs = {"a": Port("any", ("B", "...", "M", "N"), doc="left factor, e.g. the channel H"),
              "b": Port("any", ("B", "...", "N", "P"), doc="right factor, e.g. the precoder W")}
    outputs = {"c": Port("any", ("B", "...", "M", "P"), doc="product a b")}

    def forward(self, a, b):
        if a.dim() < 3 or b.dim() < 3 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"tensor.matmul: a {tuple(a.shape)} and b {tuple(b.shape)} do not "
                             f"multiply (expects (B, ..., M, N) and (B, ..., N, P))")
        a, b = _matmul_operands("tensor.matmul", a, b)
        try:
            return {"c": a @ b}
        except RuntimeError:
            raise ValueError(f"tensor.matmul: leading axes of a {tuple(a.shape)} and b {tuple(b.shape)} "
                             f"do not broadcast") from None


@register("tensor.effective_channel")
class EffectiveChannel(Block):
    """Effective channel per resource element in the OFDM layout: h_eff = H W on every (s, f).

    h_eff[b, k, l, s, f] = sum_n h[b, k, n, s, f] w[b, n, l, s, f]: user k's gain on stream
    l after precoding (seed 003 MU-MIMO OFDM eqs. 1-2; the per-RE product that seed 001 Deep
    JSCBF's MMSE receiver needs). h is the layout of the OFDM channels, w that of
    ``precoder.ofdm``; a singleton OFDM-symbol axis (S = 1, a static channel, or a precoder
    computed once per subcarrier) is broadcast over the other's S. The result has the
    channel layout with L streams in place of the Nt antennas, so receivers that take h
    (``combiner.lmmse_ofdm``) take h_eff. Differentiable.

    Shapes: h complex (B, K, Nt, S, F), w complex (B, Nt, L, Sw, F), S = Sw or one of them 1
            -> h_eff complex (B, K, L, max(S, Sw), F).
    """
    inputs = {"h": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="channel per user and RE"),
              "w": Port("complex", ("B", "Nt", "L", "Sw", "F"), tag="csi", doc="precoding vectors per RE")}
    outputs = {"h_eff": Port("complex", ("B", "K", "L", "Se", "F"), tag="csi", doc="H W per RE")}

    def forward(self, h, w):
        if h.dim() != 5 or w.dim() != 5 or h.shape[2] != w.shape[1] or h.shape[4] != w.shape[4] \
                or (h.shape[3] != w.shape[3] and 1 not in (h.shape[3], w.shape[3])):
            raise ValueError(f"tensor.effective_channel: h {tuple(h.shape)} and w {tuple(w.shape)} do not fit "
                             f"(expects h (B, K, Nt, S, F) and w (B, Nt, L, S or 1, F))")
        h, w = _matmul_operands("tensor.effective_channel", h, w)
        # per-RE matrices (B, S, F, K, Nt) @ (B, Sw, F, Nt, L); matmul broadcasts S against Sw
        prod = h.permute(0, 3, 4, 1, 2) @ w.permute(0, 3, 4, 1, 2)
        return {"h_eff": prod.permute(0, 3, 4, 1, 2).contiguous()}


# --------------------------------------------------------------------------- channel helpers

def _noise_var(snr_db: float) -> float:
    return 10.0 ** (-float(snr_db) / 10.0)


@register("channel.apply")
class Apply(Block):
    """Apply a GIVEN channel: y[b,k,...] = sum_n h[b,k,n,...] x[b,n,...] + n, n ~ CN(0, N0).

    The data phase of a closed-loop frame whose channel was drawn by another block (e.g. a
    38.901 block ``channel.umi`` run on ``tensor.zeros`` with ``add_noise: false``): the
    precoder sees that h, and this block sends the precoded signal through the same h. The
    flat counterpart is ``channel.mimo_flat`` with its ``h`` input. SNR convention as every
    channel block (docs/conventions.md): x carries total energy 1 per channel use summed over
    the Nt antennas, entries of h have unit average gain, N0 = 10^(-snr_db/10) per receive
    antenna. Differentiable in x and h.

    A singleton trailing axis of h is broadcast over x's: a static channel h (B, K, Nt, 1, F)
    (one draw per frame) serves an L-symbol pilot frame x (B, Nt, L, F) and a Q-symbol data
    frame x (B, Nt, Q, F) alike, exactly as if h were expanded to every OFDM symbol.

    Shapes: x complex (B, Nt, ...), h complex (B, K, Nt, ...) with the same trailing dims or
            1 (OFDM: x (B, Nt, S, F), h (B, K, Nt, S or 1, F)) -> y complex (B, K, ...).
    """
    inputs = {"x": Port("complex", ("B", "Nt", "..."), tag="symbols", doc="transmit signal"),
              "h": Port("complex", ("B", "K", "Nt", "..."), tag="csi", doc="channel to apply")}
    outputs = {"y": Port("complex", ("B", "K", "..."), tag="symbols", doc="received signal")}
    params = {"snr_db": Param(float, 10.0, "SNR = Es/N0 per receive antenna in dB; "
                                           "N0 = 10^(-snr_db/10)", runtime=True),
              "add_noise": Param(bool, True, "add CN(0, N0) noise")}
    channel_input = "x"

    def forward(self, x, h):
        fits = h.dim() == x.dim() + 1 and h.shape[0] == x.shape[0] and h.shape[2] == x.shape[1] \
            and all(dh in (dx, 1) for dh, dx in zip(h.shape[3:], x.shape[2:]))
        if not fits:
            raise ValueError(f"channel.apply: h {tuple(h.shape)} does not fit x {tuple(x.shape)} "
                             f"(expects h (B, K, Nt, ...) for x (B, Nt, ...), trailing axes equal or 1)")
        y = (h * x.unsqueeze(1).to(h.dtype)).sum(dim=2)
        if self.p.add_noise:
            ab = torch.randn(*y.shape, 2, dtype=y.real.dtype, device=y.device)
            y = y + torch.view_as_complex(ab) * math.sqrt(_noise_var(self.p.snr_db) / 2.0)
        return {"y": y}


@register("combiner.stream_noise")
class StreamNoise(Block):
    """Noise variance of unit-gain, interference-free streams: no_i = N0 / ||H w_i||^2.

    After a receiver that separates the streams without interference and scales stream i to
    unit gain (``combiner.svd`` with ``equalize: true`` and ``w`` connected: r_i = s_i +
    (u_i^H n) / (sigma_i sqrt(p_i)), and ||H w_i|| = sigma_i sqrt(p_i)), the noise on stream i
    has variance N0 / ||H w_i||^2 -- the ``no`` a soft demapper (``classical.qam_demap``) needs
    for correctly scaled LLRs. Streams without power get a huge variance (LLRs ~ 0, erasures).
    For receivers that leave interference it is an optimistic (interference-free) value.
    N0 = 10^(-snr_db/10). The result is broadcast to the shape of ``x`` (the equalized streams).

    Shapes: h complex (B, Nr, Nt), w complex (B, Nt, S), x complex (B, S, T) -> no real (B, S, T).
    """
    inputs = {"h": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="channel (estimate) at the receiver"),
              "w": Port("complex", ("B", "Nt", "S"), tag="csi", doc="precoding matrix"),
              "x": Port("complex", ("B", "S", "T"), tag="symbols", doc="equalized streams (for the shape)")}
    outputs = {"no": Port("real", ("B", "S", "T"), doc="noise variance per symbol")}
    params = {"snr_db": Param(float, 10.0, "SNR (dB) the receiver assumes: N0 = 10^(-snr_db/10)",
                              runtime=True)}

    def forward(self, h, w, x):
        hw = h @ w.to(h.dtype)                                       # (B, Nr, S)
        g = (hw.real ** 2 + hw.imag ** 2).sum(dim=1)                 # ||H w_i||^2, (B, S)
        no = _noise_var(self.p.snr_db) / g.clamp_min(1e-12)
        return {"no": no.float()[..., None].expand(x.shape).contiguous()}


# --------------------------------------------------------------------------- sinks

@register("sink.mean")
class Mean(Sink):
    """Mean of any per-example tensor as a metric: value_b = mean_i float(x_b,i).

    Turns bool/int/real per-example outputs into reported metrics, e.g. a block's ``failed``
    flags (the failure rate), ``classical.jpeg_encode``'s ``quality``, a capacity budget.
    Complex inputs are refused (take a magnitude first). Not differentiable for bool/int.

    Shapes: x any (B, ...) -> value real (B,).
    """
    inputs = {"x": Port("any", ("B", "..."), doc="per-example values")}
    higher_is_better = False

    def forward(self, x):
        if x.is_complex():
            raise ValueError("sink.mean: complex input; reduce it to a real quantity first")
        return {"value": x.reshape(x.shape[0], -1).float().mean(dim=1)}


#: ids the tensor utilities had before the ``tensor`` stage; accepted until graph format 2
DEPRECATED_IDS = {f"csirs.{n}": f"tensor.{n}"
                  for n in ("reshape", "permute", "group", "ungroup", "zeros", "stream_map", "stream_unmap")}
for _old, _new in DEPRECATED_IDS.items():
    deprecate(_old, _new)
