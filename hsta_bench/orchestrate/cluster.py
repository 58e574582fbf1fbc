"""What trials are placed on: the nodes of a Ray cluster (or of this machine, or one described for
`--dry-run`), each with its CPUs and GPUs, and how many trials of a given size fit on them at once.

Ray places a trial on one node; a fractional GPU share packs floor(1 / share) trials onto each GPU, a
whole number of GPUs takes that many of one node's GPUs. `slots` counts the same way, so a run's fold
groups match what Ray can run at once and never more than the declared capacity.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from hsta_bench.errors import UserError


@dataclass(frozen=True)
class Node:
    cpus: float
    gpus: float = 0.0
    name: str = ""
    gpu_type: str | None = None  # e.g. "H200" (Ray's accelerator_type resource, or --cluster gpu=)
    gpu_memory_gb: float | None = None  # memory of one GPU, where known

    def fits(self, cpus: float, gpus: float) -> int:
        """How many trials of (cpus, gpus) this node runs at once."""
        n = math.floor(self.cpus / cpus + 1e-9) if cpus > 0 else math.inf
        if gpus > 0:
            if gpus < 1:
                per_gpu = math.floor(1 / gpus + 1e-9)
                n = min(n, per_gpu * math.floor(self.gpus + 1e-9))
            else:
                n = min(n, math.floor(self.gpus / gpus + 1e-9))
        return 0 if n == math.inf else int(n)


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    def slots(self, cpus: float, gpus: float) -> int:
        """How many trials of (cpus, gpus) run at once on the whole cluster."""
        return sum(n.fits(cpus, gpus) for n in self.nodes)

    def describe(self) -> str:
        gpu = {n.gpu_type for n in self.nodes if n.gpus and n.gpu_type}
        kind = f" ({', '.join(sorted(gpu))})" if gpu else ""
        return f"{len(self.nodes)} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s){kind}"

    def require(self, cpus: float, gpus: float, what: str) -> int:
        """slots(), or one line saying that no node can run such a trial."""
        n = self.slots(cpus, gpus)
        if n < 1:
            raise UserError(
                f"dispatch: a trial of {what} asks for {cpus:g} CPU(s) and {gpus:g} GPU(s); no node has "
                f"that ({self.describe()}): lower dispatch.cpus_per_trial / gpus_per_trial"
            )
        return n

    @classmethod
    def from_ray(cls) -> Cluster:
        """The alive nodes of the connected Ray instance."""
        import ray  # noqa: PLC0415 - only here: a cluster is described for dry runs and estimates without Ray

        nodes = []
        for info in ray.nodes():
            if not info.get("Alive"):
                continue
            res = info.get("Resources", {})
            kinds = [k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")]
            nodes.append(
                Node(
                    res.get("CPU", 0.0),
                    res.get("GPU", 0.0),
                    info.get("NodeManagerAddress", ""),
                    kinds[0] if kinds else None,
                )
            )
        return cls(tuple(nodes))

    @classmethod
    def local(cls, num_cpus: int | None = None) -> Cluster:
        """This machine, as a local Ray instance would see it (CUDA devices counted by torch)."""
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        name = torch.cuda.get_device_name(0) if gpus else None
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if gpus else None
        return cls((Node(float(num_cpus or os.cpu_count() or 1), float(gpus), "localhost", name, memory),))

    @classmethod
    def parse(cls, spec: str, where: str = "--cluster") -> Cluster:
        """A cluster described as `nodes=N,cpus=C,gpus=G[,gpu=NAME][,gpu_memory=GB]` (per node)."""
        known = {"nodes", "cpus", "gpus", "gpu", "gpu_memory"}
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in known:
                raise UserError(
                    f"{where} {spec}: expected nodes=N,cpus=C,gpus=G[,gpu=NAME][,gpu_memory=GB], not {part!r}"
                )
            values[key.strip()] = value.strip()
        try:
            nodes = int(values.get("nodes", 1))
            cpus = float(values.get("cpus", os.cpu_count() or 1))
            gpus = float(values.get("gpus", 0))
            memory = float(values["gpu_memory"]) if "gpu_memory" in values else None
        except ValueError:
            raise UserError(f"{where} {spec}: nodes, cpus, gpus and gpu_memory are numbers") from None
        if nodes < 1 or cpus <= 0 or gpus < 0:
            raise UserError(f"{where} {spec}: nodes >= 1, cpus > 0, gpus >= 0")
        node = Node(cpus, gpus, "", values.get("gpu") or None, memory)
        return cls(tuple(node for _ in range(nodes)))
