"""Scatter/segment reductions against dense one-hot products and explicit loops."""
import pytest
import torch

from equinet.graph import scatter_max, scatter_mean, scatter_sum, segment_mean, segment_sum


def one_hot(index, size, dtype):
    return torch.nn.functional.one_hot(index, size).to(dtype)  # [n, size]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_sum_and_mean_match_one_hot(dtype, dim):
    src = torch.randn(5, 7, 4, dtype=dtype)
    n = src.shape[dim]
    index = torch.randint(0, 3, (n,))
    size = 5  # includes empty groups
    h = one_hot(index, size, dtype)
    moved = src.movedim(dim, -1)  # [..., n]
    expect_sum = (moved @ h).movedim(-1, dim)
    count = h.sum(0).clamp(min=1)
    expect_mean = (moved @ h / count).movedim(-1, dim)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=0)
    torch.testing.assert_close(scatter_sum(src, index, dim, dim_size=size), expect_sum, **tol)
    torch.testing.assert_close(scatter_mean(src, index, dim, dim_size=size), expect_mean, **tol)
    # without dim_size the output stops at the largest index
    assert scatter_sum(src, index, dim).shape[dim % 3] == int(index.max()) + 1


def test_scatter_max_matches_loop():
    src = torch.randn(12, 3, dtype=torch.float64)
    index = torch.tensor([0, 2, 2, 0, 4, 4, 4, 0, 2, 0, 4, 2])
    out = scatter_max(src, index, dim_size=6)
    for g in range(6):
        rows = src[index == g]
        expect = rows.max(dim=0).values if rows.numel() else torch.zeros(3, dtype=src.dtype)
        torch.testing.assert_close(out[g], expect)


def test_segment_matches_scatter():
    src = torch.randn(10, 2, dtype=torch.float64)
    ptr = torch.tensor([0, 3, 3, 7, 10])
    lengths = ptr[1:] - ptr[:-1]
    expect = torch.stack([src[a:b].sum(0) for a, b in zip(ptr[:-1], ptr[1:])])
    torch.testing.assert_close(segment_sum(src, ptr), expect)
    torch.testing.assert_close(segment_mean(src, ptr),
                               expect / lengths.clamp(min=1)[:, None].double())
    # along another dim
    torch.testing.assert_close(segment_sum(src.T, ptr, dim=1), expect.T)


def test_gradients_and_double_gradients():
    index = torch.tensor([0, 1, 1, 3, 0])
    src = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    for f in [lambda x: scatter_sum(x, index, dim_size=4) ** 2,
              lambda x: scatter_mean(x, index, dim_size=4) ** 2,
              lambda x: segment_sum(x, torch.tensor([0, 2, 5])) ** 2]:
        assert torch.autograd.gradcheck(f, (src,))
        assert torch.autograd.gradgradcheck(f, (src,))
    # distinct values, so the maximum is differentiable
    src_max = torch.tensor([[0.1, 2.0], [1.5, -1.0], [0.7, 0.3], [3.0, 1.0], [-2.0, 0.5]],
                           dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: scatter_max(x, index, dim_size=4) ** 2, (src_max,))


def test_empty_input():
    out = scatter_sum(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), dim_size=2)
    assert out.shape == (2, 3) and (out == 0).all()
    assert scatter_sum(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).shape == (0, 3)


def test_bad_input():
    src = torch.randn(4, 2)
    with pytest.raises(ValueError, match="shape"):
        scatter_sum(src, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="int64"):
        scatter_sum(src, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="dim_size"):
        scatter_sum(src, torch.tensor([0, 1, 2, 3]), dim_size=3)
    with pytest.raises(ValueError, match="negative"):
        scatter_mean(src, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="dim"):
        scatter_sum(src, torch.tensor([0, 1, 2, 3]), dim=2)
    with pytest.raises(ValueError, match="ptr"):
        segment_sum(src, torch.tensor([0, 2, 3]))
    with pytest.raises(ValueError, match="non-decreasing"):
        segment_sum(src, torch.tensor([0, 3, 2, 4]))



@pytest.mark.parametrize("dim_size", [4.0, 2.7, "4", True])
def test_non_integer_dim_size_is_refused(dim_size):
    # 2.7 was truncated to 2 (and 4.0 silently accepted)
    with pytest.raises(TypeError, match="dim_size must be an integer"):
        scatter_sum(torch.randn(3), torch.tensor([0, 1, 1]), dim_size=dim_size)


def test_integer_like_dim_size_is_accepted():
    import numpy as np

    out = scatter_sum(torch.ones(3), torch.tensor([0, 1, 1]), dim_size=np.int64(3))
    assert out.tolist() == [1.0, 2.0, 0.0]
