"""Assertions shared by the graph tests, and the list of shipped graph files."""
from pathlib import Path

from flowgraph.graph import load_graph

GRAPHS_DIR = Path(__file__).resolve().parents[1] / "graphs"


def shipped_graphs(parts: bool = True) -> list[Path]:
    """Every graph file under graphs/ (sorted); study files (graphs/studies/) are not graphs.
    ``parts=False`` leaves out graphs/parts/, the sub-graphs that only run inside others."""
    return sorted(p for p in GRAPHS_DIR.rglob("*.yaml")
                  if "studies" not in p.relative_to(GRAPHS_DIR).parts
                  and (parts or "parts" not in p.relative_to(GRAPHS_DIR).parts))


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
