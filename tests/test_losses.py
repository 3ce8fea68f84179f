"""The loss language (flowgraph/losses.py): each function against torch or a hand value,
named axes, and validation of unknown functions and axes with file:line."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flowgraph.compile import compile_graph
from flowgraph.errors import ExpressionError
from flowgraph.graph import load_graph
from flowgraph.losses import LOSS_FUNCTIONS, compile_loss
from flowgraph.run import Runner

ROOT = Path(__file__).resolve().parents[1]


def run(text, port_shape=None, **ports):
    """Evaluate loss ``text`` with ports given as keyword args 'block__port'."""
    values = {k.replace("__", "."): v for k, v in ports.items()}
    return compile_loss(text, port_shape=port_shape)(values)


def shapes(**decl):
    return lambda b, p: decl.get(f"{b}__{p}")


g = torch.Generator().manual_seed(0)
LOGITS = torch.randn(3, 5, 4, 6, generator=g)                      # (B, C, H, W)
LABELS = torch.randint(0, 5, (3, 4, 6), generator=g)


def test_dense_ce_equals_torch_cross_entropy():
    got = run("ce(dec.logits, src.label)", dec__logits=LOGITS, src__label=LABELS)
    assert torch.allclose(got, F.cross_entropy(LOGITS, LABELS))


def test_dense_ce_when_width_equals_the_class_count():
    """The old ce reshaped any logits to (-1, W): silently wrong when W == C. Labels decide now."""
    logits, labels = torch.randn(2, 4, 3, 4, generator=g), torch.randint(0, 4, (2, 3, 4), generator=g)
    got = run("ce(a.x, b.y)", a__x=logits, b__y=labels)
    assert torch.allclose(got, F.cross_entropy(logits, labels))
    old = F.cross_entropy(logits.reshape(-1, 4), labels.reshape(-1))
    assert not torch.allclose(got, old)


def test_ce_ignore_index_weights_and_smoothing_as_keywords():
    labels = LABELS.clone()
    labels[:, 0] = 255
    got = run("ce(dec.logits, src.label, ignore_index=255, weight=[1, 2, 0.5, 1, 3], label_smoothing=0.1)",
              dec__logits=LOGITS, src__label=labels)
    ref = F.cross_entropy(LOGITS, labels, ignore_index=255, weight=torch.tensor([1, 2, 0.5, 1, 3]),
                          label_smoothing=0.1)
    assert torch.allclose(got, ref)
    # default: semflow's unlabelled label -1 counts for nothing
    labels[:, 0] = -1
    got = run("ce(dec.logits, src.label)", dec__logits=LOGITS, src__label=labels)
    assert torch.allclose(got, F.cross_entropy(LOGITS, labels, ignore_index=-1))
    with pytest.raises(ExpressionError, match="weight has 2 entries for 5 classes"):
        run("ce(dec.logits, src.label, weight=[1, 2])", dec__logits=LOGITS, src__label=LABELS)


def test_ce_per_user_and_plain_classification_unchanged():
    logits, labels = torch.randn(4, 3, 10, generator=g), torch.randint(0, 10, (4, 3), generator=g)
    got = run("ce(dec.logits, src.label)", dec__logits=logits, src__label=labels)   # seed 003 (B, K, C)
    assert torch.allclose(got, F.cross_entropy(logits.reshape(-1, 10), labels.reshape(-1)))
    got = run("cross_entropy(d.l, s.y)", d__l=logits[:, 0], s__y=labels[:, 0])
    assert torch.allclose(got, F.cross_entropy(logits[:, 0], labels[:, 0]))


def test_ce_ambiguous_axis_needs_dim():
    logits, labels = torch.randn(2, 4, 4, generator=g), torch.randint(0, 4, (2, 4), generator=g)
    with pytest.raises(ExpressionError, match="say which with dim=1 or dim=-1"):
        run("ce(a.x, b.y)", a__x=logits, b__y=labels)
    assert torch.allclose(run("ce(a.x, b.y, dim=1)", a__x=logits, b__y=labels), F.cross_entropy(logits, labels))
    assert torch.allclose(run("ce(a.x, b.y, dim=-1)", a__x=logits, b__y=labels),
                          F.cross_entropy(logits.reshape(-1, 4), labels.reshape(-1)))
    with pytest.raises(ExpressionError, match="do not fit logits"):
        run("ce(a.x, b.y)", a__x=logits, b__y=labels[:, :3])


def test_bce_both_variants():
    x, t = torch.randn(3, 1, 4, 4, generator=g), (torch.rand(3, 1, 4, 4, generator=g) > 0.7).float()
    assert torch.allclose(run("bce(sigmoid(a.x), b.t)", a__x=x, b__t=t), F.binary_cross_entropy(torch.sigmoid(x), t))
    assert torch.allclose(run("bce_logits(a.x, b.t, pos_weight=3)", a__x=x, b__t=t),
                          F.binary_cross_entropy_with_logits(x, t, pos_weight=torch.tensor(3.0)))
    assert torch.allclose(run("bce(sigmoid(a.x), b.t, weight=0.5)", a__x=x, b__t=t),
                          0.5 * F.binary_cross_entropy(torch.sigmoid(x), t), atol=1e-6)


def test_dice_hand_values():
    p = torch.tensor([[[0.9, 0.1], [0.8, 0.0]]])                 # binary: (B=1, 2, 2)
    t = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    inter, total = 0.9 + 0.8, (0.9 + 0.1 + 0.8) + 3.0
    assert torch.allclose(run("dice(a.p, b.t, smooth=0)", a__p=p, b__t=t), torch.tensor(1 - 2 * inter / total))
    # multi-class against labels, one pixel ignored: classes 0 and 1 over 3 counted pixels
    probs = torch.tensor([[[[1.0, 0.0, 0.5, 0.3]], [[0.0, 1.0, 0.5, 0.7]]]])   # (1, C=2, 1, 4)
    labels = torch.tensor([[[0, 1, 1, -1]]])                                     # (1, 1, 4)
    d0 = 2 * 1.0 / (1.5 + 1.0)                  # class 0: p = (1, 0, .5), t = (1, 0, 0)
    d1 = 2 * 1.5 / (1.5 + 2.0)                  # class 1: p = (0, 1, .5), t = (0, 1, 1)
    got = run("dice(a.p, b.y, smooth=0)", a__p=probs, b__y=labels)
    assert torch.allclose(got, torch.tensor(1 - (d0 + d1) / 2))
    perfect = F.one_hot(LABELS, 5).movedim(-1, 1).float()
    assert run("dice(a.p, b.y)", a__p=perfect, b__y=LABELS).abs() < 1e-6
    assert torch.allclose(run("dice(softmax(a.x), b.y)", a__x=LOGITS, b__y=LABELS),
                          run("dice(softmax(a.x, dim=1), b.y)", a__x=LOGITS, b__y=LABELS))


def test_minimum_maximum_mean_sum():
    a, b = torch.tensor([[1.0, 5.0], [3.0, -2.0]]), torch.tensor([[2.0, 4.0], [3.0, 0.0]])
    assert torch.equal(run("minimum(x.a, y.b)", x__a=a, y__b=b), torch.minimum(a, b))
    assert torch.equal(run("maximum(x.a, 0)", x__a=a), a.clamp_min(0))
    assert torch.equal(run("mean(minimum(x.a, y.b), dim=1)", x__a=a, y__b=b), torch.minimum(a, b).mean(1))
    assert torch.equal(run("sum(x.a, 0, keepdim=True)", x__a=a), a.sum(0, keepdim=True))
    assert torch.equal(run("sum(x.a, dim=[0, 1])", x__a=a), a.sum())
    # seed 002's max-min spectral efficiency: -mean(minimum(se1, se2))
    assert run("-mean(minimum(x.a, y.b))", x__a=a, y__b=b) == -torch.minimum(a, b).mean()
    assert run("sum([1, 2, 3])") == 6 and run("max(1, 2)") == 2      # plain expression functions stay


def test_named_axes_resolve_from_declared_port_shapes():
    decl = shapes(dec__logits=("B", "C", "H", "W"), src__image=("B", "...", 3, "H", "W"))
    x = torch.randn(2, 4, 5, 6, generator=g)
    got = run("mean(sum(dec.logits ** 2, dim=['H', 'W']))", decl, dec__logits=x)
    assert torch.allclose(got, (x ** 2).sum((2, 3)).mean())
    loss = compile_loss("sum(dec.logits, 'C')", port_shape=decl)
    assert "1" in loss.code and "'C'" not in loss.code
    img = torch.randn(2, 7, 3, 5, 6, generator=g)                  # after '...', axes count from the end
    assert torch.allclose(run("sum(src.image, dim='H')", decl, src__image=img), img.sum(-2))
    with pytest.raises(ExpressionError, match=r"axis 'Q' is not declared by dec.logits \(B, C, H, W\)"):
        compile_loss("mean(dec.logits, dim='Q')", port_shape=decl)
    with pytest.raises(ExpressionError, match="different positions"):
        compile_loss("mean(dec.logits - src.image, dim='H')", port_shape=decl)
    with pytest.raises(ExpressionError, match="need the graph's port shapes"):
        run("mean(dec.logits, dim='H')", dec__logits=x)


def test_unknown_function_is_refused_with_the_list():
    with pytest.raises(ExpressionError, match="unknown loss function 'ce2d'.*loss functions: mse, l1, ce"):
        compile_loss("ce2d(dec.logits, src.label)")
    assert {"ce", "bce", "bce_logits", "dice", "minimum", "maximum", "mean", "sum"} <= set(LOSS_FUNCTIONS)


def _tiny(tmp_path, loss):
    text = (ROOT / "tests/graphs/tiny.yaml").read_text().replace("loss: mse(dec.y, src.x)", f"loss: {loss}")
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def test_validation_names_file_line_for_unknown_functions_and_axes(tmp_path):
    line = next(i for i, s in enumerate((ROOT / "tests/graphs/tiny.yaml").read_text().splitlines(), 1)
                if s.strip().startswith("loss:"))
    path = _tiny(tmp_path, "ce2d(dec.y, src.x)")
    probs = [str(p) for p in compile_graph(load_graph(path)).problems]
    assert len(probs) == 1 and probs[0].startswith(f"{path}:{line}: train stage 'e2e': loss: unknown loss function 'ce2d'")
    path = _tiny(tmp_path, "mean(sum(dec.y, dim='Q'))")
    probs = [str(p) for p in compile_graph(load_graph(path)).problems]
    assert probs == [f"{path}:{line}: train stage 'e2e': loss: sum(): axis 'Q' is not declared by dec.y (B, M)"]


def test_training_uses_named_axes(tmp_path):
    path = _tiny(tmp_path, "mean(sum((dec.y - src.x) ** 2, dim='M'))")
    assert compile_graph(load_graph(path)).problems == []
    r = Runner(load_graph(path), preset="smoke", out=tmp_path / "run", quiet=True)
    r.train()
    r.close()
    rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert len(rows) > 1 and "nan" not in rows[-1]
