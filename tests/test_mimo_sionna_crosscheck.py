"""Cross-check the torch implementations against Sionna 2.x (sionna.phy.mimo) where it has the math.

Sionna's RZF normalizes each column (stream) to unit norm, this package the Frobenius norm
(total power 1, DESIGN.md), so the comparison is on column directions. Importing Sionna
costs ~10 s of CPU, so all checks share one module.
"""
import pytest
import torch

import blocks.mimo  # noqa: F401
from blocks.mimo._common import complex_normal
from flowgraph.testing import build

import sionna.phy.mimo as mimo  # noqa: E402
C64 = torch.complex64


def cn(*shape):
    return complex_normal(shape, torch.zeros(1, dtype=C64))


def colnorm(w):
    return w / torch.linalg.vector_norm(w, dim=-2, keepdim=True)


def test_rzf_matches_sionna_directions():
    torch.manual_seed(0)
    h = cn(6, 3, 4)
    snr_db, alpha = 10.0, 2.0
    ours = build("precoder.rzf", {"alpha": alpha, "snr_db": snr_db})(h=h)["w"]
    ref = mimo.rzf_precoding_matrix(h, alpha=alpha * 10 ** (-snr_db / 10))
    assert torch.allclose(colnorm(ours), colnorm(ref), atol=1e-5)
    zf_ref = mimo.rzf_precoding_matrix(h, alpha=0.0)
    assert torch.allclose(colnorm(build("precoder.zf")(h=h)["w"]), colnorm(zf_ref), atol=1e-5)


def test_lmmse_and_zf_equalizers_match_sionna():
    torch.manual_seed(1)
    b, nr, nt, t, n0 = 5, 4, 2, 6, 0.1
    h, x = cn(b, nr, nt), cn(b, nt, t)
    y = h @ x + cn(b, nr, t) * n0 ** 0.5
    hs = h[:, None].expand(b, t, nr, nt)
    s = (n0 * torch.eye(nr, dtype=C64)).expand(b, t, nr, nr)
    ref, _ = mimo.lmmse_equalizer(y.transpose(1, 2), hs, s, whiten_interference=False)
    ours = build("combiner.mmse", {"snr_db": 10.0, "stream_power": 1.0, "unbiased": True})(y=y, h=h)["x_hat"]
    assert torch.allclose(ours, ref.transpose(1, 2), atol=1e-5)
    ref_zf, _ = mimo.zf_equalizer(y.transpose(1, 2), hs, s)
    assert torch.allclose(build("combiner.zf")(y=y, h=h)["x_hat"], ref_zf.transpose(1, 2), atol=1e-5)
