"""Swin codec and NI-CFMA encoder of seed 000 (blocks/lcfsc/swin.py, _swin.py).

Contracts and gradients of extractor.swin / decoder.swin / extractor.swin_cfma, and the
paper mechanism being live: eq. (6) masks exactly round(m D^2) entries per head and window,
m = 0 reproduces plain window attention, switching the mask on, changing m or changing the
CSI changes the encoder output, and gradients reach the mask ratio and the mask network.
"""
import math

import pytest
import torch

import blocks  # noqa: F401  (registers the library)
from blocks.lcfsc._swin import masked_softmax, rank_mask, shifted_window_mask, window_partition, window_reverse
from flowgraph.testing import build, check_contract, check_gradients

# tiny: 16x16 images, patch 2 -> 8x8 grid (stage 1, window 4 + shift), 4x4 grid (stage 2, one window)
ARCH = dict(size=16, patch_size=2, embed_dims=[8, 16], depths=[2, 2], num_heads=[2, 2], window=4)
CFMA = dict(ARCH, cfma_stage=2, mask_width=4, nt=2, nr=2)
D2 = 16 * 16          # stage 2: one 4x4 window, D = 16 patches


def _img(b=2, seed=0):
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _csi(b=2, seed=1, nr=2, nt=2):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(b, nr, nt, generator=g), torch.randn(b, nr, nt, generator=g)) / math.sqrt(2)


def _taps(block):
    seen = {}
    block._publish = lambda name, tap, t: seen.__setitem__(tap, t.detach().clone())
    return seen


def _cfma(**kw):
    torch.manual_seed(0)
    return build("extractor.swin_cfma", dict(CFMA, **kw))


# ---- helpers ---------------------------------------------------------------------------
def test_window_partition_round_trip_and_shift_mask():
    x = torch.randn(2, 8, 8, 5)
    w = window_partition(x, 4)
    assert w.shape == (2 * 4, 16, 5)
    assert torch.equal(window_reverse(w, 4, 2, 8, 8), x)
    m = shifted_window_mask(8, 8, 4, 2)
    assert m.shape == (4, 16, 16)
    assert (m[0] == 0).all()                  # the top-left window has no seam
    assert (m[-1] == -100).any()              # the wrapped corner window has


# ---- contracts and gradients --------------------------------------------------------------
def test_swin_extractor_contract_and_gradients():
    torch.manual_seed(0)
    out = check_contract("extractor.swin", ARCH, image=_img())
    assert out["x"].shape == (2, 16, 16)                        # 4x4 tokens, C = 16
    check_gradients("extractor.swin", ARCH, wrt=["image"], image=_img())


def test_swin_decoder_contract_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 16)
    img = check_contract("decoder.swin", ARCH, x=x)["image"]
    assert img.shape == (2, 3, 16, 16) and img.min() >= 0 and img.max() <= 1
    check_gradients("decoder.swin", ARCH, wrt=["x"], x=x)


def test_swin_cfma_contract_and_gradients_reach_m_and_mask_network():
    torch.manual_seed(0)
    m = torch.full((2,), 0.05)
    out = check_contract("extractor.swin_cfma", CFMA, image=_img(), h=_csi(), m=m)
    assert out["x"].shape == (2, 16, 16)
    enc = check_gradients("extractor.swin_cfma", CFMA, wrt=["image", "m"], image=_img(), h=_csi(), m=m)
    fusion = enc.net.stages[1][1].attn.fusion
    assert fusion is not None and enc.net.stages[1][0].attn.fusion is None   # 2nd block of the pair only
    assert enc.net.stages[0][1].attn.fusion is None                          # only in cfma_stage
    for name, p in fusion.named_parameters():                                # the straight-through mask
        assert p.grad is not None and p.grad.abs().sum() > 0, name           # trains the mask network
    assert enc.net.stages[1][1].attn.rho.grad.abs() > 0                      # learnable rho (eq. 8)


def test_paper_defaults():
    cls = type(build("extractor.swin_cfma", CFMA))
    assert cls.params["depths"].default == [2, 2, 6, 2]
    assert cls.params["cfma_stage"].default == 3
    assert cls.params["patch_size"].default == 2


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="outside"):
        build("extractor.swin_cfma", dict(CFMA, cfma_stage=3))
    with pytest.raises(ValueError, match="needs >= 2"):
        build("extractor.swin_cfma", dict(CFMA, depths=[2, 1]))
    with pytest.raises(ValueError, match="multiple"):
        build("extractor.swin", dict(ARCH, size=20))
    with pytest.raises(ValueError, match="16x16"):
        build("extractor.swin", ARCH)(image=torch.rand(1, 3, 32, 32))


# ---- eq. (6): exactly round(m D^2) masked entries per head and window -------------------------
@pytest.mark.parametrize("m", [0.0, 0.009, 0.05, 0.3])
def test_exactly_round_m_d2_entries_masked_per_head_and_window(m):
    enc = _cfma()
    seen = _taps(enc)
    with torch.no_grad():
        enc(image=_img(), h=_csi(), m=torch.tensor([m, 0.1]))
    mask = seen["mask"]                                      # (B*nW, n_cfma, heads, D, D)
    assert mask.shape == (2, 1, 2, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    zeros = (mask == 0).flatten(3).sum(-1)                   # per window, block, head
    assert (zeros[0] == round(m * D2)).all()
    assert (zeros[1] == round(0.1 * D2)).all()
    assert torch.equal(seen["m"], torch.tensor([m, 0.1]))


def test_masked_entries_are_the_lowest_ranked_scores():
    enc = _cfma()
    seen = _taps(enc)
    with torch.no_grad():
        enc(image=_img(), h=_csi(), m=torch.full((2,), 0.1))
    mask, p = seen["mask"][:, 0].flatten(-2), seen["mask_strategy"][:, 0].flatten(-2)
    u = round(0.1 * D2)
    for w in range(mask.shape[0]):
        for hd in range(mask.shape[1]):
            low = p[w, hd].argsort()[:u]                     # ascending sort of M_s
            assert (mask[w, hd, low] == 0).all() and mask[w, hd].sum() == D2 - u


def test_rank_mask_counts_and_straight_through_gradient():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(3, 2, 64), -1).requires_grad_(True)
    m = torch.tensor([0.0, 0.1, 0.5], requires_grad=True)
    mask = rank_mask(p, m, 1.0)
    assert ((mask == 0).sum(-1) == torch.tensor([[0, 0], [6, 6], [32, 32]])).all()
    (mask * torch.arange(64.0)).sum().backward()
    assert p.grad.abs().sum() > 0 and (m.grad != 0).all()


# ---- the mechanism is live ----------------------------------------------------------------
def test_m_zero_equals_plain_window_attention():
    enc = _cfma(m=0.0)
    x, h = _img(), _csi()
    with torch.no_grad():
        on = enc(image=x, h=h)["x"]
        enc.set_runtime("cfma", False)
        off = enc(image=x, h=h)["x"]
    assert torch.equal(on, off)


def test_switching_the_mask_on_changes_the_encoder_output():
    enc = _cfma(m=0.05)
    x, h = _img(), _csi()
    with torch.no_grad():
        on = enc(image=x, h=h)["x"]
        enc.set_runtime("cfma", False)
        off = enc(image=x, h=h)["x"]
    assert (on - off).abs().max() > 1e-4


def test_mask_ratio_changes_the_output_param_and_port():
    enc = _cfma()
    x, h = _img(), _csi()
    with torch.no_grad():
        a = enc(image=x, h=h, m=torch.full((2,), 0.02))["x"]
        b = enc(image=x, h=h, m=torch.full((2,), 0.2))["x"]
        enc.set_runtime("m", 0.2)
        c = enc(image=x, h=h)["x"]                         # the runtime param when m is unconnected
    assert (a - b).abs().max() > 1e-4
    assert torch.equal(b, c)


def test_csi_changes_the_mask_and_the_output():
    enc = _cfma(m=0.1)
    seen = _taps(enc)
    x = _img()
    with torch.no_grad():
        a = enc(image=x, h=_csi(seed=1))["x"]
        ma = seen["mask"]
        b = enc(image=x, h=_csi(seed=2))["x"]
        mb = seen["mask"]
        enc.set_runtime("cfma", False)
        c = enc(image=x, h=_csi(seed=1))["x"]
        d = enc(image=x, h=_csi(seed=2))["x"]
    assert (a - b).abs().max() > 1e-5
    assert not torch.equal(ma, mb)                          # CSI fusion: h_e moves the mask
    assert torch.equal(c, d)                                # without NI-CFMA h is unused


def test_attention_taps_are_softmax_weights():
    enc = build("extractor.swin", ARCH)
    seen = _taps(enc)
    with torch.no_grad():
        enc(image=_img())
    a1, a2 = seen["attn_stage1"], seen["attn_stage2"]
    assert a1.shape == (2 * 4, 2, 16, 16) and a2.shape == (2, 2, 16, 16)
    assert torch.allclose(a1.sum(-1), torch.ones(()), atol=1e-5)


def test_swin_cfma_differs_from_swin_only_by_the_fusion():
    """With cfma off, the CFMA encoder is the plain Swin encoder (the WITT extractor)."""
    torch.manual_seed(0)
    plain = build("extractor.swin", ARCH)
    enc = _cfma(m=0.0)
    state = {k: v for k, v in enc.state_dict().items() if ".fusion." not in k and not k.endswith(".rho")}
    plain.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(plain(image=_img())["x"], enc(image=_img(), h=_csi())["x"])


# ---- mask_fill: eq. (7) as printed (zero) vs masked logits at -inf (neg_inf) ---------------------
def test_masked_softmax_leaves_masked_entries_out_and_trains_the_mask():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 8, requires_grad=True)
    hard = (torch.rand(3, 2, 8) > 0.3).float()
    hard[0, 0] = 0.0                                          # a fully masked row
    soft = torch.sigmoid(torch.randn(3, 2, 8)).requires_grad_(True)
    mask = hard + soft - soft.detach()                        # rank_mask's straight-through form
    attn = masked_softmax(logits, mask)
    ref = torch.softmax(logits.detach().masked_fill(hard == 0, float("-inf")), -1)
    rows = torch.ones(3, 2, dtype=torch.bool)
    rows[0, 0] = False                                        # the rows with something kept
    assert torch.allclose(attn[rows], ref[rows], atol=1e-6)   # exactly the softmax over M = 1
    assert (attn[rows][hard[rows] == 0].abs() < 1e-6).all()   # masked entries get no weight
    assert torch.allclose(attn[0, 0], torch.full((8,), 1 / 8))   # all masked: uniform, not NaN
    (attn * torch.arange(8.0)).sum().backward()
    assert logits.grad.abs().sum() > 0
    assert (soft.grad[1:][hard[1:] == 0] != 0).any()          # a masked entry learns to come back


def test_neg_inf_fill_gives_masked_entries_no_attention():
    enc = _cfma(mask_fill="neg_inf")
    seen = _taps(enc)
    with torch.no_grad():
        enc(image=_img(), h=_csi(), m=torch.full((2,), 0.1))
    mask, attn = seen["mask"][:, 0], seen["attn_stage2"]     # stage 2's last block is the NI-CFMA one
    assert (mask == 0).flatten(2).sum(-1).eq(round(0.1 * D2)).all()
    assert (attn[mask == 0] == 0).all() and (attn[mask == 1] > 0).all()
    assert torch.allclose(attn.sum(-1), torch.ones(()), atol=1e-5)


def test_zero_fill_keeps_softmax_weight_on_masked_entries():
    """Eq. (7) as printed: a masked logit is 0, not -inf, so the entry keeps attention."""
    enc = _cfma()
    seen = _taps(enc)
    with torch.no_grad():
        enc(image=_img(), h=_csi(), m=torch.full((2,), 0.1))
    mask, attn = seen["mask"][:, 0], seen["attn_stage2"]
    assert (attn[mask == 0] > 0).all()


def test_mask_fill_changes_the_output_and_both_equal_mha_at_m_zero():
    x, h = _img(), _csi()
    zero, neg = _cfma(), _cfma(mask_fill="neg_inf")
    neg.load_state_dict(zero.state_dict())                   # same weights, only the fill differs
    with torch.no_grad():
        m = torch.full((2,), 0.1)
        assert (zero(image=x, h=h, m=m)["x"] - neg(image=x, h=h, m=m)["x"]).abs().max() > 1e-4
        m0 = torch.zeros(2)
        a, b = zero(image=x, h=h, m=m0)["x"], neg(image=x, h=h, m=m0)["x"]
        neg.set_runtime("cfma", False)
        assert torch.equal(a, b) and torch.equal(b, neg(image=x, h=h)["x"])


def test_neg_inf_fill_gradients_reach_m_and_the_mask_network():
    torch.manual_seed(0)
    m = torch.full((2,), 0.05)
    cfg = dict(CFMA, mask_fill="neg_inf")
    check_contract("extractor.swin_cfma", cfg, image=_img(), h=_csi(), m=m)
    enc = check_gradients("extractor.swin_cfma", cfg, wrt=["image", "m"], image=_img(), h=_csi(), m=m)
    attn = enc.net.stages[1][1].attn
    for name, p in attn.fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert attn.rho.grad.abs() > 0


def test_unknown_mask_fill_is_refused():
    with pytest.raises(Exception, match="mask_fill|neg_inf"):
        build("extractor.swin_cfma", dict(CFMA, mask_fill="minus_inf"))
