"""spbsim.mm.jit keeps singly assigned, dominating variables of spbsim's
compiled functions out of stack slots (the machine namedtuple above all),
and the code computes what the plain Python computes."""
from collections import namedtuple

import numpy as np
import pytest
from numba import njit
from numba.core import lowering

import spbsim.mm.jit  # noqa: F401  (installs the rule)

S = namedtuple("S", ["a", "b", "c"])


def _helper(m, n):
    s = 0
    for k in range(n):
        if m.a[k] > 2:
            s += m.b[k]
        else:
            s -= m.c[k]
    return s


def _caller(m, n):
    t = 0
    carried = 0
    for j in range(n):
        t += _helper_inline(m, j)
        if j > 0:
            t += carried          # read in the loop before its assignment below
        carried = j * 2
        if t > 100:
            x = t
            t = x - 1
    return t


def _compile(module):
    """_caller and its inlined _helper as if they lived in ``module``."""
    global _helper_inline
    helper = type(_helper)(_helper.__code__, globals(), "_helper")
    helper.__module__ = module
    _helper_inline = njit(inline="always", _nrt=False)(helper)
    caller = type(_caller)(_caller.__code__, globals(), "_caller")
    caller.__module__ = module
    return njit(_nrt=False)(caller)


@pytest.mark.parametrize("module", ["spbsim.probe", "elsewhere"])
def test_stack_slots_only_where_a_value_can_differ(module, monkeypatch):
    stacked = []
    orig = lowering.Lower._alloca_var

    def record(self, name, fetype):
        if name not in self.varmap and name not in self._singly_assigned_vars:
            stacked.append((name, str(fetype)))
        return orig(self, name, fetype)

    monkeypatch.setattr(lowering.Lower, "_alloca_var", record)
    f = _compile(module)
    m = S(np.arange(10), np.arange(10) * 2, np.arange(10) * 3)
    assert [f(m, n) for n in range(11)] == [_caller(m, n) for n in range(11)]
    assert f(m, 10) == 200
    tuples = [n for n, t in stacked if t.startswith("S(")]
    names = {n.split(".")[0] for n, _ in stacked}
    # the loop-carried variable and the loop's accumulators keep their slots
    assert {"carried", "t", "s"} <= names
    if module == "spbsim.probe":
        # the namedtuple (argument and the inlined helper's copy) is a value
        assert tuples == []
    else:
        # numba's own rule: the namedtuple, read in many blocks, is stacked
        assert len(tuples) >= 2
