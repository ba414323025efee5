//! Strided copies: the one primitive behind Transpose, Slice, Concat, Split, Expand.

use crate::MAX_RANK;

/// For every index `i` in `dims` (row-major order):
/// `dst[dst_offset + sum i_k * dst_strides[k]] = src[src_offset + sum i_k * src_strides[k]]`.
///
/// Strides are in elements and may be negative (Slice with negative steps) or zero (Expand).
/// The caller guarantees that every reached index is in bounds (validated at load).
pub fn copy_strided<T: Copy>(
    dims: &[usize],
    src: &[T],
    src_offset: usize,
    src_strides: &[isize],
    dst: &mut [T],
    dst_offset: usize,
    dst_strides: &[isize],
) {
    if dims.contains(&0) {
        return;
    }
    // Drop size-1 dims and merge neighbours that are contiguous on both sides, so that e.g. a
    // contiguous copy becomes one `copy_from_slice` and a transpose keeps only its real axes.
    let mut rank = 0;
    let mut nd = [1usize; MAX_RANK];
    let mut ss = [0isize; MAX_RANK];
    let mut ds = [0isize; MAX_RANK];
    for (k, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let (s, d) = (src_strides[k], dst_strides[k]);
        if rank > 0 && ss[rank - 1] == s * n as isize && ds[rank - 1] == d * n as isize {
            nd[rank - 1] *= n;
            ss[rank - 1] = s;
            ds[rank - 1] = d;
            continue;
        }
        nd[rank] = n;
        ss[rank] = s;
        ds[rank] = d;
        rank += 1;
    }
    if rank == 0 {
        dst[dst_offset] = src[src_offset];
        return;
    }
    // Every destination element is written once (no zero destination stride), so the dims may
    // be visited in any order: put the source-contiguous dim second innermost and the
    // destination-contiguous one innermost, so that a permutation whose contiguous axes sit
    // elsewhere (a window partition: `[.., c, .., r, .., s]`) still runs as 2-D tiles.
    if rank >= 2 && ds[..rank].iter().all(|&d| d != 0) {
        let kd = ds[..rank].iter().rposition(|&d| d == 1);
        let ks = ss[..rank].iter().rposition(|&s| s == 1);
        if let (Some(kd), Some(ks)) = (kd, ks) {
            if kd != ks && (ks, kd) != (rank - 2, rank - 1) {
                let mut order = [0usize; MAX_RANK];
                for (m, k) in (0..rank).filter(|&k| k != ks && k != kd).enumerate() {
                    order[m] = k;
                }
                order[rank - 2] = ks;
                order[rank - 1] = kd;
                let (on, os, od) = (nd, ss, ds);
                for (j, &k) in order[..rank].iter().enumerate() {
                    nd[j] = on[k];
                    ss[j] = os[k];
                    ds[j] = od[k];
                }
            }
        }
    }
    // A transpose of the two innermost dims (the source contiguous along the outer one, the
    // destination along the inner one) runs as 2-D tiles, so both sides stay in cache.
    let tiled = rank >= 2 && ss[rank - 2] == 1 && ds[rank - 1] == 1 && ss[rank - 1] != 1;
    let inner = if tiled { rank - 2 } else { rank - 1 };
    let n = nd[rank - 1];
    let (si, di) = (ss[rank - 1], ds[rank - 1]);
    let mut idx = [0usize; MAX_RANK];
    let mut so = src_offset as isize;
    let mut dof = dst_offset as isize;
    loop {
        if tiled {
            transpose_tiles((nd[rank - 2], n), src, so, si, dst, dof, ds[rank - 2]);
        } else if si == 1 && di == 1 {
            let (s0, d0) = (so as usize, dof as usize);
            dst[d0..d0 + n].copy_from_slice(&src[s0..s0 + n]);
        } else {
            let (mut sp, mut dp) = (so, dof);
            for _ in 0..n {
                dst[dp as usize] = src[sp as usize];
                sp += si;
                dp += di;
            }
        }
        // Advance the outer counters (the dims outside the innermost run or tile).
        let mut d = inner;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            so += ss[d];
            dof += ds[d];
            if idx[d] < nd[d] {
                break;
            }
            idx[d] = 0;
            so -= ss[d] * nd[d] as isize;
            dof -= ds[d] * nd[d] as isize;
        }
    }
}

/// `dst[d0 + i * d_rs + j] = src[s0 + i + j * s_cs]` for `i < rows`, `j < cols`, in 8x8
/// tiles.
fn transpose_tiles<T: Copy>(
    (rows, cols): (usize, usize),
    src: &[T],
    s0: isize,
    s_cs: isize,
    dst: &mut [T],
    d0: isize,
    d_rs: isize,
) {
    const TILE: usize = 8;
    for i0 in (0..rows).step_by(TILE) {
        let i1 = (i0 + TILE).min(rows);
        for j0 in (0..cols).step_by(TILE) {
            let j1 = (j0 + TILE).min(cols);
            for i in i0..i1 {
                let drow = d0 + i as isize * d_rs;
                for j in j0..j1 {
                    dst[(drow + j as isize) as usize] =
                        src[(s0 + i as isize + j as isize * s_cs) as usize];
                }
            }
        }
    }
}
