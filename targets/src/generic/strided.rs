//! Broadcast iteration shared by the element-wise kernels.
//!
//! The output is contiguous and visited in row-major order; every input has one stride per
//! output dim (0 = broadcast). Before iterating, size-1 dims are dropped and neighbouring dims are
//! merged when every operand is laid out contiguously across them, so a fully contiguous operand
//! set becomes one flat loop and a scalar operand a stride-0 loop.

use crate::MAX_RANK;

/// Dims and operand strides after merging; `rank == 0` means a single element.
pub(crate) struct Plan<const K: usize> {
    pub rank: usize,
    pub dims: [usize; MAX_RANK],
    pub strides: [[usize; MAX_RANK]; K],
}

/// Merges the dims of an iteration; `None` when there is nothing to do (a zero-sized dim).
pub(crate) fn plan<const K: usize>(dims: &[usize], strides: [&[usize]; K]) -> Option<Plan<K>> {
    if dims.contains(&0) {
        return None;
    }
    let mut p = Plan {
        rank: 0,
        dims: [1; MAX_RANK],
        strides: [[0; MAX_RANK]; K],
    };
    for (d, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        if p.rank > 0 {
            let last = p.rank - 1;
            if (0..K).all(|k| strides[k][d] * n == p.strides[k][last]) {
                p.dims[last] *= n;
                for k in 0..K {
                    p.strides[k][last] = strides[k][d];
                }
                continue;
            }
        }
        p.dims[p.rank] = n;
        for k in 0..K {
            p.strides[k][p.rank] = strides[k][d];
        }
        p.rank += 1;
    }
    Some(p)
}

/// Steps the outer counters (all dims but the innermost) and the operand offsets.
#[inline]
fn advance<const K: usize>(p: &Plan<K>, idx: &mut [usize; MAX_RANK], off: &mut [usize; K]) {
    let mut d = p.rank - 1;
    while d > 0 {
        d -= 1;
        idx[d] += 1;
        for k in 0..K {
            off[k] += p.strides[k][d];
        }
        if idx[d] < p.dims[d] {
            return;
        }
        idx[d] = 0;
        for k in 0..K {
            off[k] -= p.strides[k][d] * p.dims[d];
        }
    }
}

/// `out[i] = f(a[ia], b[ib])` over a broadcast iteration.
#[inline]
pub(crate) fn map2<A: Copy, B: Copy, O>(
    dims: &[usize],
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    out: &mut [O],
    f: impl Fn(A, B) -> O,
) {
    let Some(p) = plan(dims, [sa, sb]) else {
        return;
    };
    if p.rank == 0 {
        out[0] = f(a[0], b[0]);
        return;
    }
    // Never 0 (`plan` drops size-1 dims and refuses zero ones); `max(1)` lets the compiler drop
    // `chunks_exact_mut`'s zero-size panic.
    let n = p.dims[p.rank - 1].max(1);
    let (ia, ib) = (p.strides[0][p.rank - 1], p.strides[1][p.rank - 1]);
    let total: usize = p.dims[..p.rank].iter().product();
    let mut idx = [0usize; MAX_RANK];
    let mut off = [0usize; 2];
    for row in out[..total].chunks_exact_mut(n) {
        let (oa, ob) = (off[0], off[1]);
        match (ia, ib) {
            (1, 1) => {
                for ((o, &x), &y) in row.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + n]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
        advance(&p, &mut idx, &mut off);
    }
}

/// `out[i] = f(a[ia], b[ib], c[ic])` over a broadcast iteration.
#[inline]
pub(crate) fn map3<A: Copy, B: Copy, C: Copy, O>(
    dims: &[usize],
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    c: &[C],
    sc: &[usize],
    out: &mut [O],
    f: impl Fn(A, B, C) -> O,
) {
    let Some(p) = plan(dims, [sa, sb, sc]) else {
        return;
    };
    if p.rank == 0 {
        out[0] = f(a[0], b[0], c[0]);
        return;
    }
    // Never 0 (`plan` drops size-1 dims and refuses zero ones); `max(1)` lets the compiler drop
    // `chunks_exact_mut`'s zero-size panic.
    let n = p.dims[p.rank - 1].max(1);
    let (ia, ib, ic) = (
        p.strides[0][p.rank - 1],
        p.strides[1][p.rank - 1],
        p.strides[2][p.rank - 1],
    );
    let total: usize = p.dims[..p.rank].iter().product();
    let mut idx = [0usize; MAX_RANK];
    let mut off = [0usize; 3];
    for row in out[..total].chunks_exact_mut(n) {
        let (oa, ob, oc) = (off[0], off[1], off[2]);
        if (ia, ib, ic) == (1, 1, 1) {
            let it = row
                .iter_mut()
                .zip(&a[oa..oa + n])
                .zip(&b[ob..ob + n])
                .zip(&c[oc..oc + n]);
            for (((o, &x), &y), &z) in it {
                *o = f(x, y, z);
            }
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = f(a[oa + j * ia], b[ob + j * ib], c[oc + j * ic]);
            }
        }
        advance(&p, &mut idx, &mut off);
    }
}

/// In place: `x[i] = f(x[i], b[ib])` over a broadcast iteration where `x` is the contiguous
/// output (its strides are the row-major strides of `dims`).
#[inline]
pub(crate) fn map2_inplace<B: Copy>(
    dims: &[usize],
    x: &mut [f32],
    b: &[B],
    sb: &[usize],
    f: impl Fn(f32, B) -> f32,
) {
    let mut sx = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for k in (0..dims.len()).rev() {
        sx[k] = acc;
        acc *= dims[k];
    }
    let Some(p) = plan(dims, [&sx[..dims.len()], sb]) else {
        return;
    };
    if p.rank == 0 {
        x[0] = f(x[0], b[0]);
        return;
    }
    // Never 0 (`plan` drops size-1 dims and refuses zero ones); `max(1)` lets the compiler drop
    // `chunks_exact_mut`'s zero-size panic.
    let n = p.dims[p.rank - 1].max(1);
    let ib = p.strides[1][p.rank - 1];
    let total: usize = p.dims[..p.rank].iter().product();
    let mut idx = [0usize; MAX_RANK];
    let mut off = [0usize; 2];
    for row in x[..total].chunks_exact_mut(n) {
        let ob = off[1];
        match ib {
            1 => {
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + n]) {
                    *o = f(*o, y);
                }
            }
            0 => {
                let y = b[ob];
                for o in row.iter_mut() {
                    *o = f(*o, y);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(*o, b[ob + j * ib]);
                }
            }
        }
        advance(&p, &mut idx, &mut off);
    }
}
