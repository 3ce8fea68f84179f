"""Block.needed_inputs: a training stage runs only the branches its blocks read in their
current mode (Scheduler.subplan), and the ignored inputs receive None."""
import torch
from torch import nn

from flowgraph import Block, Param, Port, register
from flowgraph.graph import loads_graph
from flowgraph.run import Runner

CALLS = {"side": 0}


@register("testing.side_branch")
class SideBranch(Block):
    """An expensive side branch (counts its calls): (B, N) -> (B, N)."""
    inputs = {"x": Port("real", ("B", "N"))}
    outputs = {"y": Port("real", ("B", "N"))}

    def forward(self, x):
        CALLS["side"] += 1
        return {"y": 2 * x}


@register("testing.gated")
class Gated(Block):
    """y = W x (+ side when mode = sum): (B, N), side (B, N) optional -> (B, N)."""
    inputs = {"x": Port("real", ("B", "N")), "side": Port("real", ("B", "N"), optional=True)}
    outputs = {"y": Port("real", ("B", "N"))}
    params = {"mode": Param(str, "sum", "sum or pass", runtime=True, choices=("sum", "pass")), "n": Param(int, 4)}

    def __init__(self, **p):
        super().__init__(**p)
        self.lin = nn.Linear(self.p.n, self.p.n)
        self.seen_side = []

    def needed_inputs(self):
        return {"x"} if self.p.mode == "pass" else None

    def forward(self, x, side=None):
        self.seen_side.append(side is not None)
        y = self.lin(x)
        return {"y": y + side if self.p.mode == "sum" else y}


GRAPH = """
format: 1
name: gated
variables: {mode: sum, steps: 3}
blocks:
  src:  {type: testing.vectors, params: {n: 4}}
  side: {type: testing.side_branch}
  g:    {type: testing.gated, params: {mode: $mode}}
  err:  {type: testing.mse}
connections:
  - src.x -> g.x
  - src.x -> side.x
  - side.y -> g.side
  - g.y -> err.pred
  - src.x -> err.target
train:
  - stage: a
    trainable: [g]
    loss: mse(g.y, src.x)
    steps: $steps
    log_every: 1000
    mode: pass
  - stage: b
    trainable: [g]
    loss: mse(g.y, src.x)
    steps: $steps
    log_every: 1000
"""


def test_subplan_skips_branches_a_block_does_not_read(tmp_path):
    r = Runner(loads_graph(GRAPH), out=tmp_path / "r", quiet=True)
    sch = r.scheduler
    sch.reset_variables({"mode": "pass"})
    plan = sch.subplan(["g.y"])
    assert [s.name for s in plan] == ["src", "g"]
    assert dict(plan[-1].bindings)["side"] is None
    sch.reset_variables({})
    assert [s.name for s in sch.subplan(["g.y"])] == ["src", "side", "g"]


def test_training_runs_the_side_branch_only_where_it_is_read(tmp_path):
    r = Runner(loads_graph(GRAPH), out=tmp_path / "r", quiet=True)
    CALLS["side"] = 0
    r.train()
    g = r.scheduler.block("g")
    assert g.seen_side == [False] * 3 + [True] * 3           # stage a (pass), then stage b (sum)
    assert CALLS["side"] == 3
    r.close()
