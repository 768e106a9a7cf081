"""Distributed helpers without torchrun: one process, nothing started."""
import torch

from equinet.train import DistributedContext, all_reduce_sum, init_distributed, shard


def test_single_process(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx = init_distributed()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    model = torch.nn.Linear(1, 1)
    assert ctx.wrap(model) is model
    t = torch.ones(2)
    assert all_reduce_sum(t, ctx) is t and t.tolist() == [1.0, 1.0]
    ctx.close()


def test_samplers_and_shards_partition():
    data = list(range(10))
    seen = []
    for rank in range(2):
        ctx = DistributedContext(rank=rank, world_size=2)
        sampler = ctx.sampler(data, seed=3)
        sampler.set_epoch(1)
        seen += list(sampler)
        assert shard(torch.arange(5), ctx).tolist() == list(range(rank, 5, 2))
    assert sorted(seen) == data
    one = DistributedContext().sampler(data, seed=3)
    one.set_epoch(1)
    # the two ranks interleave the single process's permutation
    assert list(one)[0::2] == seen[:5] and list(one)[1::2] == seen[5:]
