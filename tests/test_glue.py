"""Glue blocks (blocks/glue.py) and the OFDM precoding wrapper (blocks/ofdm/precoding.py):
contracts, gradients and the behaviour each docstring promises."""
import math

import pytest
import torch

import blocks  # noqa: F401
from blocks.mimo._common import energy
from flowgraph.testing import build, check_contract, check_gradients


def cn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)) / math.sqrt(2)


# ------------------------------------------------------------------------------ sources

def test_bits_contract_and_values():
    out = check_contract("source.bits", {"shape": [3, 40], "batch": 5})
    b = out["bits"]
    assert b.shape == (5, 3, 40) and b.dtype == torch.float32
    assert set(b.unique().tolist()) <= {0.0, 1.0}


def test_bits_eval_split_is_fixed_and_batch_independent():
    a = build("source.bits", {"shape": [16], "num_eval_examples": 300})
    b = build("source.bits", {"shape": [16], "num_eval_examples": 300})
    b.seed(99)                                      # the run seed moves training draws only
    xa = torch.cat([d["bits"] for d in a.eval_batches(7)])
    xb = torch.cat([d["bits"] for d in b.eval_batches(300)])
    assert xa.shape == (300, 16) and a.num_eval_examples() == 300
    assert torch.equal(xa, xb)
    assert torch.equal(xa, torch.cat([d["bits"] for d in a.eval_batches(7)]))   # repeatable
    assert abs(xa.mean().item() - 0.5) < 0.03
    assert not torch.equal(a()["bits"], b()["bits"])
    c = build("source.bits", {"shape": [16], "num_eval_examples": 300, "eval_seed": 5})
    assert not torch.equal(xa, torch.cat([d["bits"] for d in c.eval_batches(64)]))


def test_bits_feed_ldpc_encoder():
    bits = build("source.bits", {"shape": [64], "batch": 2})()["bits"]
    c = build("classical.ldpc_encode", {"k": 64, "n": 128})(bits=bits)["c"]
    assert c.shape == (2, 128)


@pytest.mark.parametrize("m", [0, 2, 4])
def test_symbols_energy_and_constellation(m):
    src = build("source.symbols", {"shape": [2, 500], "bits_per_symbol": m, "energy": 0.25,
                                   "num_eval_examples": 40})
    out = check_contract(src)
    assert out["x"].shape == (16, 2, 500) and out["x"].dtype == torch.complex64
    x = torch.cat([d["x"] for d in src.eval_batches(16)])
    assert x.shape == (40, 2, 500)
    assert abs(energy(x).mean().item() - 0.25) < 0.01
    if m:
        assert len(torch.unique(torch.view_as_real(x).reshape(-1, 2), dim=0)) == 2 ** m


def test_sources_reject_bad_params():
    with pytest.raises(ValueError):
        build("source.bits", {"shape": []})
    with pytest.raises(ValueError):
        build("source.symbols", {"bits_per_symbol": 3})


# ------------------------------------------------------------------------------ layout

def test_reshape_c_and_f_order():
    x = torch.arange(12.0).reshape(2, 6)
    c = check_contract("tensor.reshape", {"shape": [3, -1]}, x=x)["x"]
    assert torch.equal(c, x.reshape(2, 3, 2))
    f = check_contract("tensor.reshape", {"shape": [3, -1], "order": "F"}, x=x)["x"]
    # F order deals element n to row n mod 3, column n // 3 (a block interleaver)
    assert torch.equal(f[0], torch.tensor([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]))
    back = build("tensor.reshape", {"shape": [-1], "order": "F"})(x=f)["x"]
    assert torch.equal(back, x)
    z = cn(2, 4, 6)
    assert torch.equal(build("tensor.reshape", {"shape": [6, 4], "order": "F"})(x=z)["x"][1],
                       torch.from_numpy(z[1].numpy().reshape(6, 4, order="F")))
    with pytest.raises(ValueError):
        build("tensor.reshape", {"shape": [5, -1], "order": "F"})(x=x)
    check_gradients("tensor.reshape", {"shape": [3, -1], "order": "F"}, wrt=["x"], x=cn(2, 6))


def test_permute():
    h = cn(2, 4, 3, 5, 6)
    out = check_contract("tensor.permute", {"dims": [0, 3, 4, 1, 2]}, x=h)["x"]
    assert out.shape == (2, 5, 6, 4, 3) and torch.equal(out[1, 2, 3], h[1, :, :, 2, 3])
    for bad in ([1, 0, 2], [0, 1, 1], []):
        with pytest.raises(ValueError):
            build("tensor.permute", {"dims": bad})
    with pytest.raises(ValueError):
        build("tensor.permute", {"dims": [0, 2, 1]})(x=h)
    check_gradients("tensor.permute", {"dims": [0, 2, 1]}, wrt=["x"], x=cn(2, 3, 4))


def test_group_ungroup_round_trip():
    x = torch.randn(8, 3, 4, 4)
    g = check_contract("tensor.group", {"size": 4}, x=x)["x"]
    assert g.shape == (2, 4, 3, 4, 4) and torch.equal(g[1, 2], x[6])
    u = check_contract("tensor.ungroup", {}, x=g)["x"]
    assert torch.equal(u, x)
    f = build("tensor.ungroup")(x=torch.zeros(2, 4, dtype=torch.bool))["x"]
    assert f.shape == (8,) and f.dtype == torch.bool
    with pytest.raises(ValueError):
        build("tensor.group", {"size": 3})(x=x)


def test_zeros():
    out = check_contract("tensor.zeros", {"shape": [4, 2, 8]}, ref=torch.zeros(3, 7))["x"]
    assert out.shape == (3, 4, 2, 8) and out.dtype == torch.complex64 and not out.any()


def test_concat_split_round_trip_any_kind():
    a, b = cn(3, 128, seed=20), cn(3, 24, seed=21)
    x = check_contract("tensor.concat", {}, a=a, b=b)["x"]
    assert x.shape == (3, 152) and torch.equal(x[:, :128], a) and torch.equal(x[:, 128:], b)
    parts = check_contract("tensor.split", {"sizes": [128, -1]}, x=x)
    assert torch.equal(parts["a"], a) and torch.equal(parts["b"], b)
    # int and bool tensors, another axis, optional third and fourth parts
    i = torch.arange(24).reshape(2, 3, 4)
    j = build("tensor.concat", {"dim": 1})(a=i, b=i + 100, c=i + 200)["x"]
    assert j.shape == (2, 9, 4) and torch.equal(j[:, 6:], i + 200)
    k = build("tensor.split", {"sizes": [-1, 3], "dim": 1})(x=j)
    assert torch.equal(k["a"][:, 3:], i + 100) and torch.equal(k["b"], i + 200)
    m = build("tensor.concat")(a=torch.ones(2, 1, dtype=torch.bool), b=torch.zeros(2, 2, dtype=torch.bool))["x"]
    assert m.tolist() == [[True, False, False]] * 2
    check_gradients("tensor.concat", {}, wrt=["a", "b"], a=a, b=b)
    check_gradients("tensor.split", {"sizes": [100, 52]}, wrt=["x"], x=x)


def test_concat_split_errors():
    with pytest.raises(ValueError, match="kinds"):
        build("tensor.concat")(a=cn(2, 3), b=torch.randn(2, 3))
    with pytest.raises(ValueError, match="differ outside"):
        build("tensor.concat")(a=torch.randn(2, 3, 4), b=torch.randn(2, 2, 5))
    with pytest.raises(ValueError, match="batch axis"):
        build("tensor.concat", {"dim": 0})(a=torch.randn(2, 3), b=torch.randn(2, 3))
    with pytest.raises(ValueError, match="two sizes"):
        build("tensor.split", {"sizes": [1, 2, 3]})
    with pytest.raises(ValueError, match="not sizes"):
        build("tensor.split", {"sizes": [4, 4]})(x=torch.randn(2, 7))


def test_matmul_effective_channel_broadcast_and_promotion():
    h, w = cn(2, 1, 3, 4, seed=22), cn(2, 5, 4, 2, seed=23)      # static h, 5 precoders
    c = check_contract("tensor.matmul", {}, a=h, b=w)["c"]
    assert c.shape == (2, 5, 3, 2)
    assert torch.allclose(c, torch.einsum("bsrn,bsnp->bsrp", h.expand(2, 5, 3, 4), w), atol=1e-6)
    real = torch.randn(2, 4, 2)
    c2 = build("tensor.matmul")(a=h[:, 0], b=real)["c"]           # a real factor is promoted
    assert c2.dtype == torch.complex64 and torch.allclose(c2, h[:, 0] @ real.to(torch.complex64))
    with pytest.raises(ValueError, match="do not multiply"):
        build("tensor.matmul")(a=h, b=w.transpose(-1, -2))
    with pytest.raises(ValueError, match="real or complex"):
        build("tensor.matmul")(a=torch.ones(2, 2, 2, dtype=torch.long), b=torch.ones(2, 2, 2, dtype=torch.long))
    check_gradients("tensor.matmul", {}, wrt=["a", "b"], a=h, b=w)


def test_effective_channel_ofdm_layout_and_singleton_symbols():
    h, w = cn(2, 3, 4, 1, 6, seed=24), cn(2, 4, 3, 5, 6, seed=25)  # static h (S = 1), 5 symbols of w
    he = check_contract("tensor.effective_channel", {}, h=h, w=w)["h_eff"]
    assert he.shape == (2, 3, 3, 5, 6)
    ref = torch.einsum("bknsf,bnlsf->bklsf", h.expand(2, 3, 4, 5, 6), w)
    assert torch.allclose(he, ref, atol=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        build("tensor.effective_channel")(h=h, w=w[..., :5])
    check_gradients("tensor.effective_channel", {}, wrt=["h", "w"], h=h, w=w)


def test_svd_precoding_then_mmse_on_the_effective_channel():
    """precoder.svd -> channel -> tensor.matmul (H W) -> combiner.mmse equals the per-stream
    scalar LMMSE of the diagonalised channel: x_hat_i = g_i* (u_i^H y) / (|g_i|^2 + N0)."""
    snr_db, n0 = 8.0, 10 ** -0.8
    h, s = cn(16, 3, 2, seed=26), cn(16, 2, 50, seed=27)
    pre = build("precoder.svd", {"snr_db": snr_db, "power_allocation": "waterfilling"})(h=h, s=s)
    torch.manual_seed(3)
    y = build("channel.mimo_flat", {"nt": 2, "nr": 3, "snr_db": snr_db})(x=pre["x"], h=h)["y"]
    h_eff = build("tensor.matmul")(a=h, b=pre["w"])["c"]
    x_hat = build("combiner.mmse", {"snr_db": snr_db, "stream_power": 1.0})(y=y, h=h_eff)["x_hat"]
    u, sv, _ = torch.linalg.svd(h, full_matrices=False)
    g = torch.diagonal(u.mH @ h_eff, dim1=-2, dim2=-1)          # U^H H W is diagonal: gains g_i
    assert (u.mH @ h_eff - torch.diag_embed(g)).abs().max() < 1e-4
    ref = (g.conj() / (g.abs() ** 2 + n0)).unsqueeze(-1) * (u.mH @ y)
    assert torch.allclose(x_hat, ref, atol=1e-4)


# ------------------------------------------------------------------------------ channel helpers

def test_apply_noiseless_matches_einsum_and_gradients():
    x, h = cn(2, 4, 3, 8, seed=1), cn(2, 5, 4, 3, 8, seed=2)
    y = check_contract("channel.apply", {"add_noise": False}, x=x, h=h)["y"]
    assert torch.allclose(y, torch.einsum("bknsf,bnsf->bksf", h, x), atol=1e-5)
    with pytest.raises(ValueError):
        build("channel.apply")(x=x, h=h[..., :4])
    check_gradients("channel.apply", {"snr_db": 5.0}, wrt=["x", "h"], x=x, h=h)


def test_apply_singleton_symbol_axis_equals_expanded_channel():
    """A static channel h (B, K, Nt, 1, F) serves an L-symbol pilot frame and a Q-symbol data
    frame exactly as the same h expanded to every OFDM symbol (noise included)."""
    h1 = cn(2, 3, 4, 1, 8, seed=30)
    for n_sym in (2, 7):                                         # pilot frame L, data frame Q
        x = cn(2, 4, n_sym, 8, seed=31 + n_sym)
        ch = build("channel.apply", {"snr_db": 3.0})
        torch.manual_seed(5)
        y1 = check_contract(ch, x=x, h=h1)["y"]
        torch.manual_seed(5)
        y2 = ch(x=x, h=h1.expand(2, 3, 4, n_sym, 8).contiguous())["y"]
        assert y1.shape == (2, 3, n_sym, 8) and torch.equal(y1, y2)
    with pytest.raises(ValueError, match="trailing axes equal or 1"):
        build("channel.apply")(x=cn(2, 4, 7, 8), h=cn(2, 3, 4, 2, 8))


def test_apply_empirical_snr():
    torch.manual_seed(0)
    snr_db = 7.0
    nt = 4
    x = cn(64, nt, 2000, seed=3) / math.sqrt(nt)                # total energy 1 per channel use
    h = cn(64, 2, nt, 2000, seed=4)                             # unit-gain entries
    ch = build("channel.apply", {"snr_db": snr_db})
    y = ch(x=x, h=h)["y"]
    s = (h * x.unsqueeze(1)).sum(2)
    meas = 10 * math.log10(energy(s).mean().item() / energy(y - s).mean().item())
    assert abs(meas - snr_db) < 0.1


def test_stream_noise_matches_svd_receiver():
    torch.manual_seed(1)
    snr_db, t = 5.0, 4000
    h = cn(8, 3, 2, seed=5)
    s = cn(8, 2, t, seed=6)
    pre = build("precoder.svd", {"snr_db": snr_db, "power_allocation": "equal"})(h=h, s=s)
    ch = build("channel.mimo_flat", {"nt": 2, "nr": 3, "snr_db": snr_db})
    y = ch(x=pre["x"], h=h)["y"]
    xh = build("combiner.svd")(y=y, h=h, w=pre["w"])["x_hat"]
    out = check_contract("combiner.stream_noise", {"snr_db": snr_db}, h=h, w=pre["w"], x=xh)
    no = out["no"]
    assert no.shape == xh.shape and no.dtype == torch.float32
    emp = energy(xh - s).mean(-1)                               # (B, S) measured noise variance
    assert torch.allclose(emp, no[..., 0], rtol=0.1)


def test_mean_sink():
    v = check_contract("sink.mean", {}, x=torch.tensor([[True, False], [True, True]]))["value"]
    assert torch.equal(v, torch.tensor([0.5, 1.0]))
    v = build("sink.mean")(x=torch.tensor([3, 5]))["value"]
    assert torch.equal(v, torch.tensor([3.0, 5.0]))
    with pytest.raises(ValueError):
        build("sink.mean")(x=cn(2, 3))


# ------------------------------------------------------------------------------ precoder.ofdm

B, K, NT, S, F = 2, 3, 4, 2, 5

FLAT = {"zf": ("precoder.zf", {}), "mrt": ("precoder.mrt", {}),
        "rzf": ("precoder.rzf", {"alpha": 2.0, "snr_db": 7.0}),
        "wmmse": ("precoder.wmmse", {"snr_db": 7.0, "iterations": 5})}


@pytest.mark.parametrize("method", list(FLAT))
def test_ofdm_precoder_equals_flat_precoder_per_re(method):
    h, s = cn(B, K, NT, S, F, seed=7), cn(B, K, S, F, seed=8)
    flat_type, flat_params = FLAT[method]
    params = {"method": method, **{k: v for k, v in flat_params.items()}}
    if method == "wmmse":
        params["iterations"] = 5
    out = check_contract("precoder.ofdm", params, s=s, h=h)
    ref = build(flat_type, flat_params)(h=h.permute(0, 3, 4, 1, 2), s=s.permute(0, 2, 3, 1).unsqueeze(-1))
    assert torch.allclose(out["w"], ref["w"].permute(0, 3, 4, 1, 2), atol=1e-5)
    assert torch.allclose(out["x"], ref["x"][..., 0].permute(0, 3, 1, 2), atol=1e-5)
    # x = W s on every RE, and unit total transmit energy per RE on average (DESIGN.md)
    x = torch.einsum("bnksf,bksf->bnsf", out["w"], s)
    assert torch.allclose(out["x"], x, atol=1e-5)
    p = energy(out["w"]).sum(dim=(1, 2)).mean(dim=(1, 2))
    assert torch.allclose(p, torch.ones(B), atol=1e-4)


@pytest.mark.parametrize("method", list(FLAT))
@pytest.mark.parametrize("normalize", ["matrix", "signal"])
def test_ofdm_precoder_static_channel_equals_expanded(method, normalize):
    """h with one OFDM symbol: W once per subcarrier, the same x as h expanded to all S."""
    h1, s = cn(B, K, NT, 1, F, seed=14), cn(B, K, 6, F, seed=15)
    params = {"method": method, "normalize": normalize, "iterations": 5, "snr_db": 7.0}
    one = check_contract("precoder.ofdm", params, s=s, h=h1)
    full = build("precoder.ofdm", params)(s=s, h=h1.expand(B, K, NT, 6, F).contiguous())
    assert one["w"].shape == (B, NT, K, 1, F) and one["x"].shape == (B, NT, 6, F)
    assert torch.allclose(one["x"], full["x"], atol=1e-4)
    assert torch.allclose(one["w"].expand_as(full["w"]), full["w"], atol=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        build("precoder.ofdm", params)(s=s, h=cn(B, K, NT, 2, F))


def test_ofdm_precoder_zf_nulls_interference_and_signal_normalization():
    h, s = cn(B, K, NT, S, F, seed=9), cn(B, K, S, F, seed=10)
    w = build("precoder.ofdm", {"method": "zf"})(h=h, s=s)["w"]
    g = torch.einsum("bknsf,bnjsf->bkjsf", h, w)                 # h_k w_j per RE
    off = g * (1 - torch.eye(K)).reshape(1, K, K, 1, 1)
    assert off.abs().max() < 1e-4
    x = build("precoder.ofdm", {"method": "mrt", "normalize": "signal"})(h=h, s=s)["x"]
    assert torch.allclose(energy(x).sum(1).mean(dim=(1, 2)), torch.ones(B), atol=1e-4)
    out = build("precoder.ofdm", {"method": "mrt"})(h=h)
    assert out["x"].shape == (B, NT, S, F) and not out["x"].any()


def test_ofdm_precoder_runtime_snr_reaches_rzf():
    h = cn(B, K, NT, S, F, seed=11)
    blk = build("precoder.ofdm", {"method": "rzf", "alpha": 1.0, "snr_db": 0.0})
    w0 = blk(h=h)["w"]
    blk.set_runtime("snr_db", 30.0)
    w1 = blk(h=h)["w"]
    wz = build("precoder.ofdm", {"method": "zf"})(h=h)["w"]
    assert not torch.allclose(w0, w1, atol=1e-3)
    assert (w1 - wz).abs().max() < (w0 - wz).abs().max()      # alpha N0 -> 0: towards ZF


@pytest.mark.parametrize("method", list(FLAT))
def test_ofdm_precoder_gradients(method):
    params = {"method": method, "iterations": 3}
    if method == "rzf":
        params.update(learnable_alpha=True, alpha=1.5)
    blk = check_gradients("precoder.ofdm", params, wrt=["s", "h"],
                          s=cn(B, K, S, F, seed=12), h=cn(B, K, NT, S, F, seed=13))
    if method == "rzf":
        assert [n for n, _ in blk.named_parameters()] == ["inner.alpha_raw"]


# ------------------------------------------------------------------------------ tensor.* ids

OLD_IDS = """\
format: 1
name: old_ids
blocks:
  src: {type: source.symbols, params: {shape: [2, 6], num_eval_examples: 4, batch: 4}}
  flat: {type: csirs.reshape, params: {shape: [-1]}}
  back: {type: tensor.reshape, params: {shape: [3, 4]}}
connections:
  - src.x -> flat.x
  - flat.x -> back.x
"""


def test_old_csirs_ids_work_with_a_deprecation_note(write_graph, capsys):
    from flowgraph import registry
    from flowgraph.cli import main
    from flowgraph.compile import compile_graph
    from flowgraph.graph import load_graph

    assert registry.get("csirs.reshape") is registry.get("tensor.reshape")
    assert registry.renamed("csirs.group") == "tensor.group" and registry.renamed("tensor.group") is None
    assert "csirs.reshape" not in registry.all_types() and "tensor.stream_map" in registry.all_types()
    path = write_graph(OLD_IDS)
    cg = compile_graph(load_graph(path))
    assert cg.problems == [] and cg.blocks["flat"].type_id == "tensor.reshape"
    assert [str(n) for n in cg.notes] == [
        f"{path}:5: note: block 'flat': type 'csirs.reshape' is deprecated, use 'tensor.reshape' "
        f"(the old id works until format 2)"]
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(cg.notes[0]) and out[1].endswith("ok (3 blocks, 2 connections)")


def test_no_shipped_graph_uses_a_deprecated_id():
    from flowgraph.compile import compile_graph
    from flowgraph.graph import load_graph

    from graph_checks import shipped_graphs
    for path in shipped_graphs():
        assert compile_graph(load_graph(path)).notes == [], path
