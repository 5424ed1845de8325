"""Software prefetch for the kernels: ask the CPU for rows before they are read.

At catalogue scale a WARP event reads the rows of up to ``max_sampled`` random items
(their feature rows, identity embedding, bias and trend count), and the draws find no
violator for most events, so it reads all of them.  Read one after another, each
draw waits for its own cache misses.  :func:`prefetch_draw_rows` asks for every draw's
rows first, so their misses overlap.  A prefetch is a hint: it never changes a result.

From the Python twins these are calls into compiled code, and they do nothing there
that a test could see either; with ``NUMBA_DISABLE_JIT=1`` they do nothing at all.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from streamrec.model.vectors import FASTMATH

#: float32 values per 64-byte cache line.
_LINE = 16


def _no_prefetch(arr, index):  # type: ignore[no-untyped-def]
    """Plain Python (the JIT disabled): nothing to ask the CPU for."""


@intrinsic
def _llvm_prefetch(typingctx, arr, index):  # type: ignore[no-untyped-def]
    """``llvm.prefetch`` of element ``index`` of a 1-D array: read, into every cache level."""
    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (address, read, highest locality, data cache)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_prefetch = _no_prefetch if config.DISABLE_JIT else _llvm_prefetch  # type: ignore[attr-defined]


@njit(cache=True, error_model="numpy", inline="always")
def prefetch(a, i):  # type: ignore[no-untyped-def]
    """Prefetch ``a[i]`` of a 1-D array."""
    _prefetch(a, i)


@njit(cache=True, error_model="numpy", inline="always")
def prefetch_row(a, r):  # type: ignore[no-untyped-def]
    """Prefetch every cache line of row ``r`` of a C-contiguous 2-D float32 array."""
    row = a[r]
    for c in range(0, row.shape[0], _LINE):
        _prefetch(row, c)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def prefetch_draw_rows(drawn, count, items, popularity, trend_on):  # type: ignore[no-untyped-def]
    """Prefetch what scoring items ``drawn[:count]`` reads: their feature rows and weights,
    their trend counts (``trend_on``), then each feature's embedding row and bias.

    The second pass reads the feature rows the first asked for: by then their misses
    are in flight together.
    """
    ifx, ifw, V, Vb = items.feature_rows, items.feature_weights, items.emb, items.bias
    for t in range(count):
        j = drawn[t]
        prefetch(ifx[j], 0)
        prefetch(ifw[j], 0)
        if trend_on:
            prefetch(popularity.trend, j)
    for t in range(count):
        j = drawn[t]
        for k in range(ifx.shape[1]):
            f = ifx[j, k]
            if f < 0:
                break
            prefetch_row(V, f)
            prefetch(Vb, f)
