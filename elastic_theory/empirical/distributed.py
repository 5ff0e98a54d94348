"""Where this process stands in a ``torchrun`` / ``accelerate launch`` job, and the few collective steps the
package needs itself (the training is distributed by ``transformers.Trainer`` and ``accelerate``).

Before the trainer creates the process group, the launcher's environment says it all: ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` are set by both launchers (absent: one process, rank 0). Once the
group exists it is asked instead. A model is *sharded* when FSDP holds its parameters (FSDP2's
``fully_shard``: ``DTensor`` parameters; FSDP1: a ``FullyShardedDataParallel`` wrapper): then every
forward pass gathers parameters from all ranks, and every rank must take part in it.

For computations that shard work themselves (``probe``: each rank takes every ``world``-th batch of windows;
``measure`` and ``compare``: each rank scores a shard of the documents, :mod:`.sharding`), :func:`launched_group`
holds the process group a launcher asked for over a block, on the device :func:`process_device` gives this rank,
and :func:`sum_across_ranks` adds each rank's partial sums (an all-reduce; nothing when there is one process).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

import torch

__all__ = [
    "GROUP_TIMEOUT_MINUTES", "check_fsdp_device", "full_state_dict", "group_ready", "is_main_process", "is_sharded", "launched_group",
    "local_rank", "process_device", "rank", "sum_across_ranks", "world_size",
]

GROUP_TIMEOUT_MINUTES = 120
"""How long a collective waits for the slowest rank before the process group gives up. The wait is the imbalance
of the ranks' work (for sharded scoring at most one document's scoring) plus the model loads; errors do not wait
for it (:mod:`.sharding`). Generous, since a long corpus on unequal GPUs can leave ranks minutes apart."""


def group_ready() -> bool:
    """Whether this process is in a process group (torch.distributed initialized)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """The number of training processes: the process group's size, or before it exists the launcher's ``WORLD_SIZE``."""
    return torch.distributed.get_world_size() if group_ready() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank: the process group's, or before it exists the launcher's ``RANK`` (0 without one)."""
    return torch.distributed.get_rank() if group_ready() else int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 without a launcher): the GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Rank 0: the one process that writes files (results, tracked rates, the saved model)."""
    return rank() == 0


def is_sharded(model) -> bool:
    """True when FSDP holds ``model``'s parameters (a forward pass is then a collective of all ranks)."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules()) or any(
        isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model) -> dict[str, torch.Tensor] | None:
    """The complete parameters of ``model`` on the CPU, on rank 0; ``None`` on the other ranks.

    A sharded model's parameters are gathered (``torch.distributed.checkpoint``'s full state dict,
    a collective: call it on every rank); an unsharded one (one process, or DDP, where every rank
    holds the same parameters) is read where it is.
    """
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if is_main_process() else None
    if not is_main_process():
        return None
    return {k: v.detach().cpu() for k, v in getattr(model, "module", model).state_dict().items()}


def check_fsdp_device(fsdp: bool, device_type: str) -> None:
    """``ValueError`` for FSDP on the CPU: accelerate shards only on accelerators, and on the CPU would train
    with plain DDP instead, silently."""
    if fsdp and device_type == "cpu":
        raise ValueError("fsdp needs GPUs: accelerate runs FSDP only on accelerators, and on the CPU it would train "
                         "with DDP instead; drop fsdp (torchrun then trains with DDP) or train on GPUs")


def process_device(device: str | None) -> str | None:
    """The device this rank computes on: under several processes, ``cuda`` (or the default with CUDA present) means
    the GPU of this process's ``LOCAL_RANK``; an explicit ``cuda:N``, the CPU, or one process are left as given."""
    if world_size() == 1:
        return device
    if device is None and torch.cuda.is_available():
        device = "cuda"
    return f"cuda:{local_rank()}" if device == "cuda" else device


@contextlib.contextmanager
def launched_group(device: str | None) -> Iterator[None]:
    """The block with a process group when a launcher started several processes (``WORLD_SIZE`` > 1), none with one.

    ``device`` as :func:`process_device` resolves it. Back end: NCCL when this rank computes on CUDA (its GPU made
    the current device), gloo on the CPU. A group that already exists (a trainer's) is used and left alone; one
    created here is destroyed on leaving the block.
    """
    if world_size() == 1 or group_ready():
        yield
        return
    resolved = process_device(device)
    cuda = resolved is not None and resolved.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(resolved))
    torch.distributed.init_process_group("nccl" if cuda else "gloo",
                                         timeout=datetime.timedelta(minutes=GROUP_TIMEOUT_MINUTES))
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def sum_across_ranks(tensors: list[torch.Tensor], world: int | None = None) -> list[torch.Tensor]:
    """Every tensor replaced, in place, by its sum over the ranks of the process group (all-reduce, the same result
    on every rank); unchanged in one process. ``world``: the processes the caller sharded its work over;
    ``ValueError`` unless the group has that many (one shard's partial sums would pass for the whole). Returns
    ``tensors``."""
    size = torch.distributed.get_world_size() if group_ready() else 1
    if world is not None and size != world:
        raise ValueError(f"the work was sharded over {world} processes, but the process group has {size}")
    if size > 1:
        for t in tensors:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return tensors
