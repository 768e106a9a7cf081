r"""Several processes with ``torchrun``: process group, samplers, gradient averaging.

Scripts call :func:`init_distributed` once. Under ``torchrun --nproc_per_node=N`` it reads
the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) and joins the process group: NCCL when CUDA is available (one GPU per
local rank), gloo on CPU. Without ``torchrun`` it returns a context of one process and
starts nothing, so a script behaves the same either way.

Training then wraps the model with :meth:`DistributedContext.wrap`
(``DistributedDataParallel`` averages the gradients over processes) and draws batches with
:meth:`DistributedContext.sampler` (a ``DistributedSampler``: every process a disjoint
share of one seeded permutation per epoch; with one process it is just that permutation).
A global batch of ``B`` molecules is ``B / world_size`` per process.

Examples
--------
>>> ctx = init_distributed()  # no torchrun: one process
>>> ctx.rank, ctx.world_size, ctx.is_main, ctx.device.type in ("cpu", "cuda")
(0, 1, True, True)
>>> shard(torch.arange(5), ctx).tolist()
[0, 1, 2, 3, 4]
"""
import dataclasses
import os

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed", "all_reduce_sum", "shard",
           "max_difference_across_ranks"]


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank``, ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, plots and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def sampler(self, dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        """A ``DistributedSampler`` for this process (call ``set_epoch`` every epoch)."""
        return torch.utils.data.DistributedSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=shuffle,
            seed=seed, drop_last=drop_last)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` with several processes, else ``model``."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (no-op for one process), once every process got here.

        Free the DistributedDataParallel models first (e.g. call this after the function
        that held them returned): a DDP destroyed after its process group can hang the
        process at exit.
        """
        if self.distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def init_distributed(backend: str = None) -> DistributedContext:
    """Join torchrun's process group if launched by it; one process otherwise.

    Parameters
    ----------
    backend : str, optional
        Default ``"nccl"`` when CUDA is available, else ``"gloo"``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"), rank=rank,
                                world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device)


def all_reduce_sum(tensor: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Sum of ``tensor`` over processes (in place; returned); itself for one process."""
    if ctx.distributed:
        # NCCL reduces only device tensors: go through ctx.device and back
        moved = tensor.to(ctx.device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        tensor.copy_(moved)
    return tensor


def shard(indices: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """This process's share ``indices[rank::world_size]`` (disjoint, no padding: for
    evaluation, where sums over processes must count every item once)."""
    return indices[ctx.rank::ctx.world_size]


@torch.no_grad()
def max_difference_across_ranks(module: torch.nn.Module, ctx: DistributedContext) -> float:
    """Largest difference of any parameter between processes (0.0 when they agree, as
    they must after DistributedDataParallel steps; always 0.0 for one process)."""
    params = [p.detach().reshape(-1).double() for p in module.parameters()]
    flat = torch.cat(params) if params else torch.zeros(1, dtype=torch.float64)
    if not ctx.distributed:
        return 0.0
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((high - low).max())
