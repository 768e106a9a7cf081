"""scatter_softmax against torch.softmax group by group."""
import torch

from equinet.nn import scatter_softmax


def test_matches_softmax_per_group():
    index = torch.tensor([2, 0, 2, 2, 0, 3])
    src = torch.randn(6, 3, dtype=torch.float64)
    out = scatter_softmax(src, index, 5)
    for g in range(5):
        rows = index == g
        if rows.any():
            torch.testing.assert_close(out[rows], torch.softmax(src[rows], dim=0))


def test_weights_and_huge_logits():
    index = torch.tensor([0, 0, 0, 1, 1])
    src = torch.tensor([1000.0, 1001.0, -1000.0, 5.0, 7.0], dtype=torch.float64)
    weight = torch.tensor([1.0, 0.5, 1.0, 0.0, 0.0], dtype=torch.float64)
    out = scatter_softmax(src, index, 2, weight=weight)
    e = torch.exp(torch.tensor([-1.0, 0.0], dtype=torch.float64)) * torch.tensor([1.0, 0.5])
    torch.testing.assert_close(out[:2], e / e.sum())
    assert out[2] == 0  # exp(-2001) underflows, no NaN
    assert torch.equal(out[3:], torch.zeros(2, dtype=torch.float64))  # all weights zero


def test_gradients():
    index = torch.tensor([0, 0, 1, 1, 1, 3])
    weight = torch.rand(6, dtype=torch.float64) + 0.1
    src = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    fn = lambda s: scatter_softmax(s, index, 4, weight)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (src,))
    assert torch.autograd.gradgradcheck(fn, (src,))


def test_bad_index_and_dim_size_are_named():
    import pytest

    logits = torch.randn(4)
    # an index beyond dim_size was torch's "index out of bounds" from inside the scatter
    with pytest.raises(ValueError, match=r"index holds groups in \[0, 3\].*dim_size = 3"):
        scatter_softmax(logits, torch.tensor([0, 1, 3, 2]), 3)
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        scatter_softmax(logits, torch.tensor([0, -1, 2, 2]), 3)
    with pytest.raises(TypeError, match="dim_size must be an integer, got 2.7"):
        scatter_softmax(logits, torch.tensor([0, 1, 1, 0]), 2.7)
