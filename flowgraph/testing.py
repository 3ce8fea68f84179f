"""Helpers for block tests: the contract and gradient checks every block must pass.

    out = check_contract("channel.awgn", {"snr_db": 10.0}, x=torch.randn(4, 8, dtype=torch.cfloat))
    check_gradients("decoder.deepjscc", {"channels": 8}, wrt=["z"], z=...)
"""
from __future__ import annotations

import torch

from . import registry
from .block import tensor_kind
from .shapes import match_shape


def build(type_id: str, params: dict | None = None):
    cls = registry.get(type_id)
    block = cls(**(params or {}))
    block.name = type_id
    return block


def check_contract(type_id_or_block, params: dict | None = None, device="cpu", **inputs):
    """Run a block once and assert its outputs match the declared ports.

    Checks: every declared output is returned (and nothing else), dtype kinds match,
    shapes match the declared symbolic shapes with symbols bound consistently across
    inputs and outputs, and tensors live on ``device``. Returns the outputs.
    """
    block = build(type_id_or_block, params) if isinstance(type_id_or_block, str) else type_id_or_block
    block = block.to(device)
    cls = type(block)
    bindings = dict(cls.bind_dims(block.p))
    for name, t in inputs.items():
        assert name in cls.inputs, f"{cls.type_id}: test passes unknown input {name!r}"
        if t is None:
            continue
        port = cls.inputs[name]
        if port.kind != "any":
            assert tensor_kind(t) == port.kind, f"{cls.type_id}.{name}: test input kind {tensor_kind(t)}"
        reason = match_shape(port.shape, tuple(t.shape), bindings)
        assert reason is None, f"{cls.type_id}.{name}: test input shape {tuple(t.shape)}: {reason}"
    out = block(**{k: (v.to(device) if v is not None else None) for k, v in inputs.items()})
    assert isinstance(out, dict), f"{cls.type_id}.forward must return a dict of port -> tensor"
    assert set(out) == set(cls.outputs), f"{cls.type_id}: returned {sorted(out)}, declared {sorted(cls.outputs)}"
    for name, t in out.items():
        port = cls.outputs[name]
        assert isinstance(t, torch.Tensor), f"{cls.type_id}.{name} is {type(t).__name__}, not a tensor"
        if port.kind != "any":
            assert tensor_kind(t) == port.kind, \
                f"{cls.type_id}.{name}: kind {tensor_kind(t)}, declared {port.kind}"
        reason = match_shape(port.shape, tuple(t.shape), bindings)
        assert reason is None, f"{cls.type_id}.{name}: shape {tuple(t.shape)} vs {port.shape}: {reason}"
        assert t.device.type == torch.device(device).type, f"{cls.type_id}.{name} on {t.device}"
    return out


def check_gradients(type_id_or_block, params: dict | None = None, wrt=(), **inputs):
    """Assert gradients reach every trainable parameter and each input named in ``wrt``.

    Sums |output|^2 over real/complex outputs as the loss. Returns the block.
    """
    block = build(type_id_or_block, params) if isinstance(type_id_or_block, str) else type_id_or_block
    block.train()
    leaves = {}
    for name, t in inputs.items():
        if name in wrt:
            t = t.detach().clone().requires_grad_(True)
            leaves[name] = t
        inputs[name] = t
    out = block(**inputs)
    loss = sum((v.abs() ** 2).float().mean() for v in out.values()
               if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()))
    loss.backward()
    for name, t in leaves.items():
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, \
            f"{type(block).type_id}: no gradient reaches input {name!r}"
    for pname, prm in block.named_parameters():
        if prm.requires_grad:
            assert prm.grad is not None, f"{type(block).type_id}: parameter {pname} gets no gradient"
            assert torch.isfinite(prm.grad).all(), f"{type(block).type_id}: parameter {pname} grad not finite"
    return block
