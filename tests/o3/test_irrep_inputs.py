"""Irrep and Irreps accept what e3nn accepts (and JSON lists, numpy and torch integers).

e3nn is the oracle where it accepts an input; where e3nn rejects an unambiguous
input (a JSON list, a numpy degree), the canonical spelling is the oracle.
"""
import json

import e3nn.o3
import numpy as np
import pytest
import torch

from equinet.o3 import Irrep, Irreps


def _plain_ints(irreps):
    return all(type(v) is int for mul, ir in irreps for v in (mul, ir.l, ir.p))


@pytest.mark.parametrize("text", ["1x 1e", " 2x0e + 1x 1o", "2 x 1e", "1 e", "2x1 e + 3 o",
                                  "01e", "0x0e", "1y + 2x2y", "", " "])
def test_strings_as_e3nn(text):
    ours = Irreps(text)
    assert repr(ours) == repr(e3nn.o3.Irreps(text)) and _plain_ints(ours)


@pytest.mark.parametrize("value, expected", [
    ([[1, [0, 1]]], "1x0e"),  # mul 1, (l=0, p=1), as json.loads gives it
    ([[2, [1, -1]], "0e", [3, "2e"]], "2x1o + 0e + 3x2e"),
    ([(np.int64(2), (np.int64(1), np.int64(-1)))], "2x1o"),
    ([(torch.tensor(2), (torch.tensor(1), -1))], "2x1o"),
    ([(np.int32(4), "0e")], "4x0e"),
    ([(2, (1, -1.0))], "2x1o"),
    ([(2, e3nn.o3.Irrep("1o")), e3nn.o3.Irrep("0e")], "2x1o + 0e"),
    (e3nn.o3.Irreps("2x0e + 3x1o"), "2x0e + 3x1o"),
])
def test_lists_and_integer_types(value, expected):
    ours = Irreps(value)
    assert ours == Irreps(expected) and _plain_ints(ours)


def test_json_round_trip():
    irreps = Irreps("16x0e + 8x1o + 4x2e")
    assert Irreps(json.loads(json.dumps(irreps))) == irreps


@pytest.mark.parametrize("args", [(np.int64(1), -1), (1, np.int64(-1)), (torch.tensor(1), -1),
                                  (np.uint8(1), np.int8(-1)), ([1, -1],), ((np.int64(1), -1),),
                                  ("1 o",), (e3nn.o3.Irrep("1o"),)])
def test_irrep_integer_types(args):
    ir = Irrep(*args)
    assert ir == Irrep("1o") and type(ir.l) is int and type(ir.p) is int


@pytest.mark.parametrize("text", ["1x1q", "1.5x0e", "x1e", "-1x0e", "1e+", "1x0E", "2X0e",
                                  "1x1e + + 0e"])
def test_bad_strings_still_fail_as_in_e3nn(text):
    with pytest.raises(ValueError):
        e3nn.o3.Irreps(text)
    with pytest.raises(ValueError, match="invalid"):
        Irreps(text)


@pytest.mark.parametrize("value, match", [
    ([(1.5, (0, 1))], "multiplicity 1.5"),
    ([(True, (0, 1))], "multiplicity True"),  # e3nn makes "Truex0e" of it
    ([(np.float64(2.0), "0e")], "multiplicity"),
    ([(torch.tensor([2]), "0e")], "multiplicity"),
    ([(2, (1.0, -1))], "degree"),
    ([(2, (1, True))], "parity"),
    ([(2, (1, 0))], "parity"),
    ([[1, [0, 1], 2]], "cannot interpret"),
])
def test_bad_lists_fail_clearly(value, match):
    with pytest.raises(ValueError, match=match):
        Irreps(value)


@pytest.mark.parametrize("args", [(True, 1), (1, False), (np.float64(1.0), 1),
                                  (torch.tensor(1.0), 1), (np.bool_(True), 1)])
def test_bad_irrep_numbers(args):
    with pytest.raises(ValueError, match="degree|parity"):
        Irrep(*args)
