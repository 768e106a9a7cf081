"""assert_equivariant must pass equivariant functions and catch each kind of violation."""
import pytest
import torch

from equinet.testing import CARTESIAN_POINTS, assert_equivariant, equivariance_error


def test_passes_cross_product_as_pseudovector():
    errors = assert_equivariant(lambda a, b: torch.linalg.cross(a, b), ["1o", "1o"], "1e")
    assert set(errors) == {(0, False), (1, False)}


def test_catches_wrong_parity_only_under_inversion():
    errors = equivariance_error(lambda a, b: torch.linalg.cross(a, b), ["1o", "1o"], "1o")
    assert errors[(0, False)].max() < 1e-12
    assert errors[(1, False)].max() > 1e-3
    with pytest.raises(AssertionError, match="parity=1"):
        assert_equivariant(lambda a, b: torch.linalg.cross(a, b), ["1o", "1o"], "1o")


def test_catches_non_equivariant_map():
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(lambda v: v * scale, "1o", "1o")


def test_points_translation_invariance_and_its_violation():
    def pairwise_distances(pos):
        return (pos[:, None] - pos[None]).norm(dim=-1)

    def squared_norms(pos):  # rotation invariant but not translation invariant
        return (pos**2).sum(-1, keepdim=True)

    assert_equivariant(pairwise_distances, CARTESIAN_POINTS, None)
    errors = equivariance_error(squared_norms, CARTESIAN_POINTS, "0e")
    assert errors[(0, False)].max() < 1e-12 and errors[(0, True)].max() > 1e-3
    # points out of points: the centroid moves with the cloud
    assert_equivariant(lambda pos: pos.mean(0, keepdim=True), CARTESIAN_POINTS, CARTESIAN_POINTS)


def test_module_is_checked_in_float64_and_left_untouched():
    lin = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3) * 2.0)
    assert_equivariant(lin, "1o", "1o")
    assert lin.weight.dtype == torch.float32


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="last dimension 5"):
        equivariance_error(lambda v: v, "1o", "2e")
    with pytest.raises(ValueError, match="irreps_in"):
        equivariance_error(lambda v: v, "1q", "1o")
