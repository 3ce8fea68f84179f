"""Data-parallel runs under torchrun: the process group, rank-0-only writing, DDP wrappers.

``torchrun --nproc-per-node N -m flowgraph run GRAPH`` (or ``semflow run --nproc N GRAPH``)
starts N processes with ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set. Each builds the same
graph with the same seed; :func:`world_from_env` joins them into one process group (gloo
on CPU, nccl on CUDA, one GPU per local rank). What is shared and how:

* **Training data.** A source's ``batch`` is the *global* batch: every rank's source draws
  the same global batch (same generator, same seed) and keeps its contiguous slice
  (:meth:`flowgraph.scheduler.Scheduler.forward`), so the examples of one step are those a
  single process with that batch would see, split without overlap.
* **Gradients.** Blocks that train in a stage are wrapped in
  ``DistributedDataParallel`` (frozen ones are not), which averages gradients over ranks:
  for a loss that is a mean over the batch, the update equals the single-process one.
* **Randomness inside blocks** (channel noise, dropout): torch's generator is seeded with
  ``seed + RANK_SEED_STRIDE * rank``, so ranks draw independent noise (rank 0 = a single
  process); per-batch redrawn variables (a training SNR) are drawn alike on every rank.
* **Writing.** Rank 0 alone writes the run directory, log, train.csv, metrics and
  checkpoints; checkpoints hold every rank's RNG states and the world size.
* **Evaluation** (:mod:`flowgraph.evaluation`) shares out held-out batches by index and
  gathers each batch's per-example values once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: torch seed of rank r: run seed + RANK_SEED_STRIDE * r
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (a single process: rank 0 of 1)."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"          # where collectives' tensors live (nccl needs CUDA tensors)

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. "a checkpoint is due", which depends on its clock)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def mean(self, values: list) -> list:
        """The mean over ranks of each number in ``values`` (logged losses and metrics)."""
        if not self.active or not values:
            return list(values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.size).tolist()

    def barrier(self):
        if self.active:
            dist.barrier()


SINGLE = World()


def world_from_env(device: str) -> tuple[World, str]:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1), else a single process.

    Returns the world and the device this rank runs on (``cuda`` becomes ``cuda:LOCAL_RANK``)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return SINGLE, device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return World(rank, size, local, device if cuda else "cpu"), device


def wrap_trained(modules: dict, names, device) -> dict:
    """``DistributedDataParallel`` around each block in ``names`` (those that train in a stage).

    Only parameters with ``requires_grad`` are synchronised, so a block that trains a few of
    its parameters (``trainable: [enc:head.*]``) averages just those. Unused parameters are
    allowed (a block's branch that a configuration switches off)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    dev = torch.device(device)
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    return {n: DDP(modules[n], device_ids=ids, find_unused_parameters=True)
            for n in names if any(p.requires_grad for p in modules[n].parameters())}


def torchrun_command(argv: list, nproc: int, python: str, entry=("-m", "flowgraph")) -> list:
    """The torchrun command line that runs ``semflow ARGV`` (without ``--nproc``) in ``nproc``
    processes on this machine."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            *entry, *rest]
