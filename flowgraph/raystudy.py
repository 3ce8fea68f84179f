"""Study points as Ray tasks (``semflow study STUDY.yaml --ray ADDRESS|local``).

Each point is the same ``python -m flowgraph run ...`` command as with ``--jobs``; a Ray
task runs it where the cluster has the resources the study declares (``resources: {cpus,
gpus}``; by default ``threads`` CPUs and, with a CUDA device, one GPU), in the driver's
working directory, and returns its exit code and stderr. Run directories are written where
the command says (the study directory, as an absolute path): on a cluster that path must be
on a filesystem every node sees. Ray is an optional extra (``pip install -e '.[ray]'``).
"""
from __future__ import annotations

import os
import subprocess
import sys

from .errors import SemflowError


def _run_point(cmd: list, cwd: str, env: dict) -> tuple[int, str]:
    """On a Ray worker: the point's command with this node's Python."""
    full = [sys.executable, *cmd[1:]]
    proc = subprocess.run(full, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stderr


#: environment the points need wherever they run (the rest is the worker's own)
PASSED_ENV = ("PYTHONPATH", "SEMFLOW_BLOCKS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "QT_QPA_PLATFORM")


class _RayPoint:
    """A running point, with the ``poll()`` / ``returncode`` of a Popen."""

    def __init__(self, ray, ref, err):
        self.ray, self.ref, self.err, self.returncode = ray, ref, err, None

    def poll(self):
        if self.returncode is None:
            done, _ = self.ray.wait([self.ref], timeout=0)
            if done:
                try:
                    self.returncode, text = self.ray.get(self.ref)
                except Exception as exc:      # the task itself failed (node lost, ...)
                    self.returncode, text = 1, f"semflow: error: Ray task failed: {type(exc).__name__}: {exc}\n"
                self.err.write(text)
                self.err.flush()
        return self.returncode


class RayLauncher:
    def __init__(self, address: str, resources: dict, threads: int, device: str):
        try:
            import ray
        except ImportError:
            raise SemflowError("--ray: Ray is not installed (pip install -e '.[ray]')") from None
        self.ray = ray
        self.cpus = float(resources.get("cpus", threads or 1))
        self.gpus = float(resources.get("gpus", 1 if str(device).startswith("cuda") else 0))
        self.local = address == "local"
        self.address = "a local Ray instance" if self.local else address
        self._own = not ray.is_initialized()
        if self._own:
            try:
                ray.init(address=None if self.local else address, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            except Exception as exc:
                raise SemflowError(f"--ray {address}: cannot connect: {type(exc).__name__}: {exc}") from None
        self.task = ray.remote(_run_point)

    def describe(self) -> str:
        return f"{self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"

    def start(self, cmd: list, err) -> _RayPoint:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        ref = self.task.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(cmd, os.getcwd(), env)
        return _RayPoint(self.ray, ref, err)

    def close(self):
        if self._own:
            self.ray.shutdown()
