import torch

from vision2seq.config import TrainConfig
from vision2seq.data.samplers import EpochSampler, ShardSampler, loader_options


def test_epoch_order_is_fixed_by_seed_and_epoch_and_shards_cover_each_global_batch():
    single = EpochSampler(10, seed=3)
    single.set_epoch(2)
    order = list(single)
    assert sorted(order) == list(range(10)) and order == list(single)
    single.set_epoch(3)
    assert list(single) != order
    shards = [EpochSampler(10, seed=3, rank=r, world_size=2) for r in range(2)]
    for shard in shards:
        shard.set_epoch(2)
    ranks = [list(s) for s in shards]
    for k in range(0, 5, 2):  # each global batch of 4 = two rank batches of 2
        assert sorted(ranks[0][k : k + 2] + ranks[1][k : k + 2]) == sorted(order[2 * k : 2 * k + 4])
    shards[0].set_start(3)
    assert list(shards[0]) == ranks[0][3:] and len(shards[0]) == 2
    assert [list(ShardSampler(5, r, 2)) for r in range(2)] == [[0, 2, 4], [1, 3]]


def test_loader_options_defaults():
    class EpochDependent:
        def set_epoch(self, epoch):
            pass

    cfg = TrainConfig()
    cpu = torch.device("cpu")
    assert loader_options(cfg, object(), 2, cpu) == {"pin_memory": False, "persistent_workers": True}
    assert loader_options(cfg, EpochDependent(), 2, cpu)["persistent_workers"] is False
    assert loader_options(cfg, object(), 0, cpu)["persistent_workers"] is False
    assert loader_options(cfg, object(), 2, torch.device("cuda"))["pin_memory"] is True
    forced = TrainConfig(pin_memory=True, persistent_workers=False)
    assert loader_options(forced, object(), 2, cpu) == {"pin_memory": True, "persistent_workers": False}
