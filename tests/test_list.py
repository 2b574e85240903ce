"""spbsim.mm.list: the intrusive lists every allocator list is built on
(include/linux/list.h semantics), on plain arrays."""
import numpy as np

from spbsim.mm.list import list_add, list_add_tail, list_del, list_replace

add, add_tail, dele, replace = (f.py_func for f in (list_add, list_add_tail, list_del, list_replace))


def _walk(nxt, head, h):
    out, i = [], head[h]
    while i >= 0:
        out.append(int(i))
        i = nxt[i]
    return out


def _back(prv, tail, h):
    out, i = [], tail[h]
    while i >= 0:
        out.append(int(i))
        i = prv[i]
    return out[::-1]


def test_add_del_replace_keep_both_directions_and_list_keys_apart():
    nxt, prv = np.full(10, -1, np.int32), np.full(10, -1, np.int32)
    head, tail = np.full((2, 3), -1, np.int32), np.full((2, 3), -1, np.int32)
    a, b = (0, 1), (1, 2)
    add(nxt, prv, head, tail, a, 3)
    add(nxt, prv, head, tail, a, 4)             # head: 4 3
    add_tail(nxt, prv, head, tail, a, 5)        # 4 3 5
    add_tail(nxt, prv, head, tail, b, 7)
    assert _walk(nxt, head, a) == _back(prv, tail, a) == [4, 3, 5]
    assert _walk(nxt, head, b) == [7]
    dele(nxt, prv, head, tail, a, 3)            # middle
    assert _walk(nxt, head, a) == _back(prv, tail, a) == [4, 5]
    assert nxt[3] == prv[3] == -1
    replace(nxt, prv, head, tail, a, 5, 9)      # the tail
    assert _walk(nxt, head, a) == _back(prv, tail, a) == [4, 9]
    replace(nxt, prv, head, tail, a, 4, 2)      # the head
    assert _walk(nxt, head, a) == _back(prv, tail, a) == [2, 9]
    dele(nxt, prv, head, tail, a, 2)
    dele(nxt, prv, head, tail, a, 9)
    assert head[a] == tail[a] == -1 and _walk(nxt, head, b) == [7]
    assert (head[0] == -1).all() and (nxt[[2, 3, 4, 5, 9]] == -1).all()


def test_integer_keys_work_as_well():
    nxt, prv = np.full(4, -1, np.int64), np.full(4, -1, np.int64)
    head, tail = np.full(2, -1, np.int64), np.full(2, -1, np.int64)
    for i in range(4):
        add(nxt, prv, head, tail, i % 2, i)
    assert _walk(nxt, head, 0) == [2, 0] and _back(prv, tail, 1) == [3, 1]
