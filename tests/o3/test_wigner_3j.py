"""wigner_3j: every triple up to l = 6 against e3nn, the complex-basis relation to sympy's
Clebsch-Gordan coefficients and 3j symbols, invariance, symmetries, caching, bad input."""
import math

import e3nn.o3 as e3
import numpy as np
import pytest
import torch
from sympy import S
from sympy.physics.wigner import clebsch_gordan
from sympy.physics.wigner import wigner_3j as sympy_wigner_3j

import equinet.o3 as o3

F64 = torch.float64


def close(actual, expected, atol=None, **kwargs):
    """assert_close with an absolute tolerance only (or torch's defaults when none is given)."""
    if atol is not None:
        kwargs.update(atol=atol, rtol=0)
    torch.testing.assert_close(actual, expected, **kwargs)


def _triples(lmax):
    return [(l1, l2, l3) for l1 in range(lmax + 1) for l2 in range(lmax + 1)
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1)]


@pytest.fixture(scope="module")
def e3nn_up_to_6():
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        return {t: e3.wigner_3j(*t, dtype=F64) for t in _triples(6)}
    finally:
        torch.set_default_dtype(old)


def test_every_triple_up_to_6_matches_e3nn(e3nn_up_to_6):
    assert len(e3nn_up_to_6) == 175
    for triple, expected in e3nn_up_to_6.items():
        C = o3.wigner_3j(*triple, dtype=F64)
        assert C.shape == expected.shape and C.dtype == F64
        close(C, expected, atol=1e-14, msg=f"triple {triple}")


def _change_of_basis(l):
    """Real -> complex basis written out from its definition (rows complex m, columns real m)."""
    q = np.zeros((2 * l + 1, 2 * l + 1), dtype=complex)
    for m in range(1, l + 1):
        q[l - m, l + m] = 1
        q[l - m, l - m] = -1j
        q[l + m, l + m] = (-1) ** m
        q[l + m, l - m] = 1j * (-1) ** m
    q /= math.sqrt(2)
    q[l, l] = 1
    return (-1j) ** l * q


def _sympy_tensor(l1, l2, l3, coefficient):
    T = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            m3 = m1 + m2
            if abs(m3) <= l3:
                T[l1 + m1, l2 + m2, l3 + m3] = float(coefficient(m1, m2, m3).evalf(30))
    return T


TRIPLES_FOR_SYMPY = [(0, 0, 0), (1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 1, 2), (1, 2, 3), (2, 2, 2),
                     (3, 2, 4), (4, 3, 2), (3, 3, 3), (4, 4, 4), (4, 2, 3)]


@pytest.mark.parametrize("l1, l2, l3", TRIPLES_FOR_SYMPY)
def test_relation_to_sympy_complex_basis(l1, l2, l3):
    r"""C_abc = Re sum_{m} Q1[m1,a] Q2[m2,b] conj(Q3[m3,c]) <l1 m1 l2 m2|l3 m3> / sqrt(2 l3 + 1),
    the imaginary part being exactly zero; equivalently with
    <l1 m1 l2 m2|l3 m3> = (-1)^(l1 - l2 + m3) sqrt(2 l3 + 1) (l1 l2 l3; m1 m2 -m3)."""
    def cg_of(m1, m2, m3):
        return clebsch_gordan(S(l1), S(l2), S(l3), S(m1), S(m2), S(m3))

    def threej_of(m1, m2, m3):
        return (-1) ** (l1 - l2 + m3) * sympy_wigner_3j(l1, l2, l3, m1, m2, -m3)

    cg = _sympy_tensor(l1, l2, l3, cg_of)
    threej = _sympy_tensor(l1, l2, l3, threej_of)
    Q1, Q2, Q3 = _change_of_basis(l1), _change_of_basis(l2), _change_of_basis(l3)
    ours = o3.wigner_3j(l1, l2, l3, dtype=F64).numpy()
    from_cg = np.einsum("ia,jb,kc,ijk->abc", Q1, Q2, Q3.conj(), cg) / math.sqrt(2 * l3 + 1)
    from_3j = np.einsum("ia,jb,kc,ijk->abc", Q1, Q2, Q3.conj(), threej)
    assert np.abs(from_cg.imag).max() < 1e-15 and np.abs(from_3j.imag).max() < 1e-15
    np.testing.assert_allclose(ours, from_cg.real, atol=1e-15)
    np.testing.assert_allclose(ours, from_3j.real, atol=1e-15)


def _rotate(C, D1, D2, D3):
    """C_ijk D1_ia D2_jb D3_kc, one index at a time."""
    C = torch.einsum("ijk,ia->ajk", C, D1)
    C = torch.einsum("ajk,jb->abk", C, D2)
    return torch.einsum("abk,kc->abc", C, D3)


def test_invariant_norm_one_and_swap_symmetry_up_to_8():
    angles = o3.matrix_to_angles(o3.rand_matrix(dtype=F64))
    D = [o3.wigner_D(l, *angles) for l in range(9)]
    for l1, l2, l3 in _triples(8):
        C = o3.wigner_3j(l1, l2, l3, dtype=F64)
        close(C.norm(), torch.tensor(1.0, dtype=F64), atol=1e-14)
        close(_rotate(C, D[l1], D[l2], D[l3]), C, atol=1e-12)
        if l3 == l1 + l2:  # the documented visible consequence of the sign rule
            assert C[2 * l1, 2 * l2, 2 * l3] > 0
        swapped = o3.wigner_3j(l2, l1, l3, dtype=F64)
        close(swapped, (-1) ** (l1 + l2 + l3) * C.transpose(0, 1), atol=1e-15)


def test_degree_12_is_invariant_and_normalised():
    C = o3.wigner_3j(12, 12, 12, dtype=F64)
    assert C.shape == (25, 25, 25)
    close(C.norm(), torch.tensor(1.0, dtype=F64), atol=1e-14)
    for R in o3.rand_matrix(3, dtype=F64):
        D = o3.wigner_D(12, *o3.matrix_to_angles(R))
        close(_rotate(C, D, D, D), C, atol=1e-12)


def test_dtype_device_and_copies():
    C = o3.wigner_3j(2, 1, 3)
    assert C.dtype == torch.get_default_dtype()
    C32 = o3.wigner_3j(2, 1, 3, dtype=torch.float32)
    assert C32.dtype == torch.float32 and C32.is_contiguous()
    close(C32.double(), o3.wigner_3j(2, 1, 3, dtype=F64))
    assert o3.wigner_3j(2, 1, 3, device="meta").device.type == "meta"
    # mutating a returned tensor must not corrupt the cache
    reference = o3.wigner_3j(2, 2, 2, dtype=F64)
    o3.wigner_3j(2, 2, 2, dtype=F64).zero_()
    close(o3.wigner_3j(2, 2, 2, dtype=F64), reference, atol=0)
    assert o3.wigner_3j(np.int64(1), 1, 1).shape == (3, 3, 3)


@pytest.mark.parametrize("triple", [(1, 1, 3), (0, 0, 1), (5, 1, 3), (2, 7, 4)])
def test_triangle_rule_violation_names_the_triple(triple):
    with pytest.raises(ValueError, match=r"wigner_3j\(%d, %d, %d\).*triangle" % triple):
        o3.wigner_3j(*triple)


def test_bad_degrees():
    with pytest.raises(ValueError, match=r"wigner_3j\(-1, 0, 1\).*non-negative"):
        o3.wigner_3j(-1, 0, 1)
    with pytest.raises(TypeError, match="integer"):
        o3.wigner_3j(1.5, 1, 1)
    with pytest.raises(TypeError, match="integer"):
        o3.wigner_3j(True, 1, 1)
    with pytest.raises(TypeError, match="integer"):
        o3.wigner_3j("1", 1, 1)
