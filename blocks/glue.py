"""Small generic glue blocks: random bit/symbol sources, layout adapters, a given-channel
application, a per-stream noise helper and a mean sink.

They carry no paper-specific physics; they let the PHY graphs (``graphs/phy/``,
``graphs/baselines/jpeg_*.yaml``) wire the block families together:

    source.bits            i.i.d. 0/1 bits (B, ..., N) for coded-modulation experiments
    source.symbols         i.i.d. unit-energy QAM (or Gaussian) symbols (B, ...)
    csirs.reshape          per-example reshape, C (row-major) or F (column-major = interleave)
    csirs.permute          axis permutation, batch axis fixed (OFDM <-> per-RE matrix layout)
    csirs.group            (B, ...) -> (B/G, G, ...): G consecutive examples share one frame
    csirs.ungroup          (B, G, ...) -> (B*G, ...): the inverse of csirs.group
    csirs.zeros            a zero tensor (B, *shape) shaped by any batch tensor (a dummy input)
    channel.apply          y = H x + n with a GIVEN channel h (closed-loop data phase)
    combiner.stream_noise  N0 / ||H w_i||^2: noise variance of interference-free streams
    sink.mean              mean of any per-example tensor (failure rates, JPEG quality, ...)

Random sources: training batches draw from ``self.generator`` (seeded by the run and saved
in checkpoints); the held-out split is ``num_eval_examples`` examples drawn from a generator
seeded with ``eval_seed`` in chunks of ``EVAL_CHUNK`` examples, so example i is the same for
every run seed and every evaluation batch size.
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Block, Param, Port, Sink, Source
from flowgraph.registry import register

#: examples per independently seeded chunk of a random source's held-out split
EVAL_CHUNK = 256


def _shape_list(where: str, shape, allow_minus_one: bool = False) -> list[int]:
    out = [int(s) for s in shape]
    if allow_minus_one:
        if sum(s == -1 for s in out) > 1 or any(s == 0 or s < -1 for s in out):
            raise ValueError(f"{where}: shape {out} needs positive sizes and at most one -1")
    elif not out or any(s < 1 for s in out):
        raise ValueError(f"{where}: shape {out} must be a non-empty list of positive sizes")
    return out


class _RandomSource(Source):
    """Shared machinery of the i.i.d. random sources (see the module doc)."""
    output_name = "x"

    def __init__(self, **params):
        super().__init__(**params)
        self.shape = _shape_list(self.type_id, self.p.shape)
        for k in ("batch", "num_eval_examples"):
            if self.p[k] < 1:
                raise ValueError(f"{self.type_id}: param '{k}' must be >= 1, got {self.p[k]}")

    def draw(self, n: int, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def forward(self):
        return {self.output_name: self.draw(self.p.batch, self.generator).to(self.device)}

    def num_eval_examples(self) -> int:
        return int(self.p.num_eval_examples)

    def _chunk(self, c: int) -> torch.Tensor:
        n = min(EVAL_CHUNK, self.num_eval_examples() - c * EVAL_CHUNK)
        g = torch.Generator().manual_seed(int(self.p.eval_seed) * 1_000_003 + c)
        return self.draw(n, g)

    def eval_batches(self, batch_size: int = 0):
        bs = batch_size if batch_size and batch_size > 0 else self.p.batch
        n = self.num_eval_examples()
        cache: dict[int, torch.Tensor] = {}
        for a in range(0, n, bs):
            b = min(a + bs, n)
            parts = []
            for c in range(a // EVAL_CHUNK, (b - 1) // EVAL_CHUNK + 1):
                if c not in cache:
                    cache.clear()
                    cache[c] = self._chunk(c)
                lo, hi = max(a, c * EVAL_CHUNK), min(b, (c + 1) * EVAL_CHUNK)
                parts.append(cache[c][lo - c * EVAL_CHUNK:hi - c * EVAL_CHUNK])
            yield {self.output_name: torch.cat(parts).to(self.device)}

    def source_values_per_example(self):
        return None      # not images: no CBR


def _source_params(shape_default: list, shape_doc: str) -> dict:
    return {"shape": Param(list, shape_default, shape_doc),
            "batch": Param(int, 16, "training batch size B of forward()"),
            "num_eval_examples": Param(int, 1024, "size of the held-out split (examples)"),
            "eval_seed": Param(int, 1234, "seed of the held-out split (independent of the run seed)")}


@register("source.bits")
class Bits(_RandomSource):
    """I.i.d. equiprobable bits, real 0.0/1.0 (the payload convention of ``classical.ldpc_encode``,
    ``classical.qam_map`` and ``sink.ber``/``sink.bler``).

    Held-out split: ``num_eval_examples`` examples from a generator seeded with ``eval_seed``
    (chunks of 256 examples, so example i does not depend on the batch size or the run seed).

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

    def draw(self, n, g):
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

    def draw(self, n, g):
        m, scale = self.p.bits_per_symbol, math.sqrt(self.p.energy)
        if m == 0:
            ab = torch.randn(n, *self.shape, 2, generator=g)
            return torch.view_as_complex(ab) * (scale / math.sqrt(2.0))
        pts = qam_levels(m)
        idx = torch.randint(0, len(pts), (n, *self.shape), generator=g)
        return pts[idx] * scale


# --------------------------------------------------------------------------- layout adapters

@register("csirs.reshape")
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
        self.shape = _shape_list("csirs.reshape", self.p.shape, allow_minus_one=True)

    def forward(self, x):
        b = x.shape[0]
        if self.p.order == "C":
            return {"x": x.reshape(b, *self.shape)}
        n = x[0].numel()
        known = math.prod(s for s in self.shape if s != -1)
        if (-1 in self.shape and n % known) or (-1 not in self.shape and n != known):
            raise ValueError(f"csirs.reshape: {n} elements per example do not fit shape {self.shape}")
        shape = [n // known if s == -1 else s for s in self.shape]
        rev = lambda t: t.permute(0, *range(t.dim() - 1, 0, -1))   # noqa: E731  reverse example axes
        return {"x": rev(rev(x).reshape(b, *shape[::-1])).contiguous()}


@register("csirs.permute")
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
            raise ValueError(f"csirs.permute: dims {d} must permute 0..{len(d) - 1} with 0 first")
        self.dims = d

    def forward(self, x):
        if x.dim() != len(self.dims):
            raise ValueError(f"csirs.permute: dims {self.dims} need rank {len(self.dims)}, "
                             f"got {tuple(x.shape)}")
        return {"x": x.permute(*self.dims).contiguous()}


@register("csirs.group")
class Group(Block):
    """Group ``size`` consecutive examples into one frame: x (B, ...) -> x (B/size, size, ...).

    For multi-user frames fed by a one-example-per-user source: e.g. 4 consecutive images
    become the 4 users' payloads of one MU-MIMO OFDM slot; ``csirs.ungroup`` restores one
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
            raise ValueError(f"csirs.group: batch {x.shape[0]} is not a multiple of size {g} "
                             f"(make the evaluation batch and example count multiples of {g})")
        return {"x": x.reshape(x.shape[0] // g, g, *x.shape[1:])}


@register("csirs.ungroup")
class Ungroup(Block):
    """Inverse of ``csirs.group``: x (B, G, ...) -> x (B*G, ...), frame-major order.

    CHANGES THE BATCH SIZE. Differentiable (a view).

    Shapes: x any (B, G, ...) -> x any (B*G, ...).
    """
    inputs = {"x": Port("any", ("B", "G", "..."), doc="G examples per frame")}
    outputs = {"x": Port("any", ("Bu", "..."), doc="one example per user")}

    def forward(self, x):
        if x.dim() < 2:
            raise ValueError(f"csirs.ungroup: needs (B, G, ...), got {tuple(x.shape)}")
        return {"x": x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])}


@register("csirs.zeros")
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
        self.shape = _shape_list("csirs.zeros", self.p.shape)

    def forward(self, ref):
        return {"x": torch.zeros(ref.shape[0], *self.shape, dtype=torch.complex64, device=ref.device)}


# --------------------------------------------------------------------------- channel helpers

def _noise_var(snr_db: float) -> float:
    return 10.0 ** (-float(snr_db) / 10.0)


@register("channel.apply")
class Apply(Block):
    """Apply a GIVEN channel: y[b,k,...] = sum_n h[b,k,n,...] x[b,n,...] + n, n ~ CN(0, N0).

    The data phase of a closed-loop frame whose channel was drawn by another block (e.g. a
    38.901 block ``channel.umi`` run on ``csirs.zeros`` with ``add_noise: false``): the
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
