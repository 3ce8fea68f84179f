"""Library-wide rules: every block is documented with its shapes and exercised by a test."""
from pathlib import Path

import pytest

import blocks  # noqa: F401
from flowgraph import registry
from flowgraph.block import STAGES

TESTS = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
LIBRARY = {t: c for t, c in registry.all_types().items() if not t.startswith("testing.")}


def test_library_is_loaded_through_the_entry_point():
    assert "channel.awgn" in LIBRARY and registry.plugin_problems == []


@pytest.mark.parametrize("type_id", sorted(LIBRARY))
def test_block_is_documented_and_tested(type_id):
    cls = LIBRARY[type_id]
    doc = (cls.__doc__ or "").strip()
    assert doc, f"{type_id} has no docstring"
    assert "(B" in doc, f"{type_id}: the docstring must give the tensor shapes, batch first"
    assert cls.stage() in STAGES, f"{type_id}: unknown stage {cls.stage()!r}"
    for name, p in cls.params.items():
        assert p.doc, f"{type_id}: param {name!r} has no doc"
    assert f'"{type_id}"' in TESTS or f"'{type_id}'" in TESTS, f"{type_id} is not named in any test"
