"""Assertions shared by the paper-system graph tests."""
from flowgraph.graph import load_graph


def assert_only_variant_differs(full_path, ablations: dict, default: str = "full"):
    """Each ablation file equals the full graph except for name, description and the
    variable ``variant`` (so the files cannot drift apart)."""
    full = load_graph(full_path).to_dict()
    for variant, path in ablations.items():
        d = load_graph(path).to_dict()
        assert d["variables"]["variant"] == variant
        for key in set(full) | set(d):
            if key in ("name", "description"):
                continue
            if key == "variables":
                assert {**d[key], "variant": default} == full[key], path.name
            else:
                assert d.get(key) == full.get(key), f"{path.name}: '{key}' differs from {full_path.name}"
