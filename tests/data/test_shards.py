"""ShardDataset: items, collate, DataLoader workers and DistributedSampler."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

pytest.importorskip("pyscf")
from equinet.chem.labels import LevelOfTheory  # noqa: E402
from equinet.data import ShardDataset, generate  # noqa: E402
from equinet.graph import Batch  # noqa: E402

LEVEL = LevelOfTheory("HF", "sto-3g")
PROPS = ("energy", "forces", "dipole", "fock", "overlap")
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from pyscf import lib

    previous = lib.num_threads()
    lib.num_threads(1)
    rng = np.random.default_rng(0)
    same = [([8, 1, 1], WATER + 0.03 * rng.standard_normal((3, 3))) for _ in range(6)]
    mixed = [([1, 1], [[0, 0, 0], [0, 0, 0.7 + 0.02 * i]]) if i % 2 else same[i]
             for i in range(6)]
    out = {}
    for name, geoms in (("same", same), ("mixed", mixed)):
        out[name] = tmp_path_factory.mktemp(name)
        generate(geoms, LEVEL, out[name], properties=PROPS, progress=False, shard_size=4)
    lib.num_threads(previous)
    return out


def test_items(folders):
    ds = ShardDataset(folders["same"])
    assert len(ds) == 6 and ds.indices == list(range(6)) and ds.failed == []
    item = ds[4]
    assert sorted(item) == sorted(("index", "z", "pos") + PROPS + ("scf_cycles",))
    assert item["index"].item() == 4 and item["z"].dtype == torch.long
    assert item["z"].tolist() == [8, 1, 1] and item["pos"].shape == (3, 3)
    assert item["energy"].shape == () and item["forces"].shape == (3, 3)
    assert item["fock"].shape == (7, 7) and item["fock"].dtype == torch.float64
    with np.load(folders["same"] / "shard_000001.npz") as f:   # geometries 4, 5
        np.testing.assert_array_equal(item["fock"].numpy(), f["4/fock"])
        np.testing.assert_array_equal(item["pos"].numpy(), f["4/pos"])
    small = ShardDataset(folders["same"], keys=["energy"], dtype=torch.float32)
    assert sorted(small[0]) == ["energy", "index", "pos", "z"]
    assert small[0]["pos"].dtype == torch.float32
    with pytest.raises(KeyError, match="density_matrix"):
        ShardDataset(folders["same"], keys=["density_matrix"])


def test_collate_stacks_same_atoms_and_lists_mixed(folders):
    same = ShardDataset(folders["same"])
    b = same.collate([same[0], same[3], same[5]])
    assert isinstance(b, Batch) and b.num_graphs == 3 and b.z.shape == (9,)
    assert b.fock.shape == (3, 7, 7) and b.forces.shape == (9, 3) and b.energy.shape == (3,)
    assert b.index.tolist() == [0, 3, 5] and b.dipole.shape == (3, 3)
    mixed = ShardDataset(folders["mixed"])
    b = mixed.collate([mixed[0], mixed[1]])
    assert isinstance(b.fock, list) and [f.shape for f in b.fock] == [(7, 7), (2, 2)]
    assert b.ptr.tolist() == [0, 3, 5] and b.energy.shape == (2,)


@pytest.mark.parametrize("shuffle", [False, True])
def test_dataloader_workers_and_distributed_sampler(folders, shuffle):
    ds = ShardDataset(folders["mixed"])
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=shuffle, seed=1)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                            collate_fn=ds.collate)
        for batch in loader:
            assert batch.num_graphs <= 2
            seen.extend(batch.index.tolist())
    assert sorted(seen) == list(range(6))


def test_incomplete_folder_and_failures(folders, tmp_path):
    import shutil

    for p in folders["same"].iterdir():
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "shard_000000.npz").unlink()     # as if the run were cut short
    ds = ShardDataset(tmp_path)
    assert ds.indices == [4, 5]
    with np.load(folders["mixed"] / "shard_000001.npz") as f:   # a shard of other data
        np.savez(tmp_path / "shard_000001.npz", **dict(f))
    with pytest.raises(ValueError, match="mixed data"):
        ShardDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest"):
        ShardDataset(tmp_path / "nothing")
