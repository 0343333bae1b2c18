"""Where training runs: the device, and the processes of a ``torchrun`` launch.

* the device: ``train.device`` / ``--device`` (:mod:`psplava.device`).
* :class:`Runtime`: one process of a run.  Under ``torchrun`` (any launch mode: standalone,
  static ``--master-addr``, c10d rendezvous, several nodes) it reads ``RANK``,
  ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment and joins the process group --
  NCCL on GPUs, gloo on CPUs; one process per GPU (``cuda:LOCAL_RANK``).  Without them
  it is a single process and every collective is the identity.

Seeds, per rank: every rank seeds torch and numpy with ``train.seed`` (the same initial
weights; DDP broadcasts rank 0's anyway).  The epoch's order and each sample's
augmentation are drawn from ``(train.seed, epoch)`` over the *global* order, as a single
process draws them, and then split across ranks: a recording gets the same shift whatever
``--nproc`` is.  DataLoader workers draw nothing random.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from psplava.device import describe, resolve_device
from psplava.errors import ConfigError

def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain process."""
    return int(os.environ.get("RANK", "0")) == 0


#: set when a rank skipped its process group's teardown: it must leave with os._exit
TEARDOWN_ABANDONED = [False]


@dataclass
class Runtime:
    """One process of a (possibly distributed) run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @classmethod
    def start(cls, device: str | None) -> "Runtime":
        """The device for ``device``; under torchrun, join the process group."""
        if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
            return cls(resolve_device(device))
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ["LOCAL_RANK"])
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        dev = resolve_device(device)
        if dev.type == "cuda":
            if local >= torch.cuda.device_count():
                raise ConfigError(f"rank {rank}: LOCAL_RANK {local} but only "
                                  f"{torch.cuda.device_count()} GPU(s) on this node: one "
                                  "process per GPU (--nproc-per-node <= GPUs)")
            dev = torch.device(f"cuda:{local}")
            torch.cuda.set_device(dev)
            backend = "nccl"
        else:
            backend = "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(dev, rank, world, local, local_world, backend)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Tear the process group down (NCCL).  gloo's ``destroy_process_group`` has been
        seen to block for ever on rank 0, holding the GIL, once its peer had gone (torch
        2.3, CPU); a gloo rank therefore skips it and leaves with ``os._exit`` after its
        output (:data:`TEARDOWN_ABANDONED`, :func:`psplava.cli.main`): every rank passed
        the trainer's last barrier with its work committed, so no peer waits on it."""
        if not (self.distributed and dist.is_initialized()):
            return
        if self.backend == "gloo":
            TEARDOWN_ABANDONED[0] = True
            return
        dist.destroy_process_group()

    # --------------------------------------------------------------- collectives
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks of a float64 tensor (the identity alone)."""
        if not self.distributed:
            return values
        t = values.detach().to(self._comm_device(), torch.float64).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable data)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0,
                                   device=self.device if self.backend == "nccl" else None)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def local_batch(self, batch_size: int) -> int:
        """Each rank's share of the global ``train.batch_size``."""
        if batch_size % self.world_size:
            raise ConfigError(f"train.batch_size {batch_size} is the global batch: it must "
                              f"divide by the {self.world_size} processes")
        return batch_size // self.world_size

    def summary(self) -> dict[str, Any]:
        return {"device": describe(self.device), "world_size": self.world_size,
                "backend": self.backend}
