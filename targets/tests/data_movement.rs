//! copy_strided, gather, gather_elements, argmax and pad against naive references.

mod common;

use common::{layout, row_major, unravel, Rng};
use mote_targets::generic::copy::copy_strided;
use mote_targets::generic::gather::{argmax_f32, gather, gather_elements};
use mote_targets::generic::pad::pad;
use mote_targets::{KernelError, PadMode, MAX_RANK};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// copy_strided

/// A signed-stride view: strides, the offset of element 0 and the buffer length.
#[derive(Clone, Debug)]
struct View {
    strides: Vec<isize>,
    offset: usize,
    len: usize,
}

/// A view of `dims` with a permuted/gapped layout, random axis flips (negative strides), an
/// extra leading offset, and (when `allow_bcast`) some stride-0 axes.
fn view(dims: Vec<usize>, allow_bcast: bool) -> impl Strategy<Value = View> {
    let rank = dims.len();
    (
        layout(dims.clone()),
        proptest::collection::vec(any::<bool>(), rank),
        proptest::collection::vec(prop_oneof![5 => Just(false), 1 => Just(allow_bcast)], rank),
        0usize..3,
    )
        .prop_map(move |(l, flips, bcast, extra)| {
            let mut offset = extra;
            let mut strides = Vec::with_capacity(rank);
            for k in 0..rank {
                let s = if bcast[k] { 0 } else { l.strides[k] as isize };
                if flips[k] && dims[k] > 0 {
                    offset += (dims[k] - 1) * s as usize;
                    strides.push(-s);
                } else {
                    strides.push(s);
                }
            }
            View {
                strides,
                offset,
                len: l.len + extra,
            }
        })
}

fn naive_copy<T: Copy>(dims: &[usize], src: &[T], sv: &View, dst: &mut [T], dv: &View) {
    let total: usize = dims.iter().product();
    for flat in 0..total {
        let idx = unravel(flat, dims);
        let at = |v: &View| {
            (v.offset as isize
                + idx
                    .iter()
                    .zip(&v.strides)
                    .map(|(&i, &s)| i as isize * s)
                    .sum::<isize>()) as usize
        };
        dst[at(dv)] = src[at(sv)];
    }
}

fn copy_case() -> impl Strategy<Value = (Vec<usize>, View, View)> {
    proptest::collection::vec(
        prop_oneof![1 => Just(0usize), 10 => 1usize..=4, 1 => 5usize..=17],
        0..=6,
    )
    .prop_flat_map(|d| (Just(d.clone()), view(d.clone(), true), view(d, false)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn copy_strided_matches_naive((dims, sv, dv) in copy_case()) {
        let src: Vec<u32> = (0..sv.len as u32).map(|i| i * 7 + 1).collect();
        let mut want = vec![0u32; dv.len];
        naive_copy(&dims, &src, &sv, &mut want, &dv);
        let mut got = vec![0u32; dv.len];
        copy_strided(&dims, &src, sv.offset, &sv.strides, &mut got, dv.offset, &dv.strides);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn copy_fixed_cases() {
    // Reverse a vector (Slice with step -1).
    let src = [1, 2, 3, 4, 5];
    let mut dst = [0; 5];
    copy_strided(&[5], &src, 4, &[-1], &mut dst, 0, &[1]);
    assert_eq!(dst, [5, 4, 3, 2, 1]);
    // Transpose [2, 3] -> [3, 2].
    let src = [1, 2, 3, 4, 5, 6];
    let mut dst = [0; 6];
    copy_strided(&[3, 2], &src, 0, &[1, 3], &mut dst, 0, &[2, 1]);
    assert_eq!(dst, [1, 4, 2, 5, 3, 6]);
    // Expand a column [2, 1] -> [2, 3].
    let mut dst = [0; 6];
    copy_strided(&[2, 3], &[7, 8], 0, &[1, 0], &mut dst, 0, &[3, 1]);
    assert_eq!(dst, [7, 7, 7, 8, 8, 8]);
    // Concat: write [2, 2] into columns 1..3 of a [2, 4] buffer.
    let mut dst = [0; 8];
    copy_strided(&[2, 2], &[1, 2, 3, 4], 0, &[2, 1], &mut dst, 1, &[4, 1]);
    assert_eq!(dst, [0, 1, 2, 0, 0, 3, 4, 0]);
    // Rank 0 copies one element; a zero-sized dim copies nothing.
    let mut dst = [0; 3];
    copy_strided(&[], &[9, 8], 1, &[], &mut dst, 2, &[]);
    assert_eq!(dst, [0, 0, 8]);
    copy_strided(&[2, 0], &[1], 0, &[1, 1], &mut dst, 0, &[1, 1]);
    assert_eq!(dst, [0, 0, 8]);
    // MAX_RANK with every axis reversed equals a full reversal.
    let dims = [2usize; MAX_RANK];
    let n = 1 << MAX_RANK;
    let src: Vec<u16> = (0..n as u16).collect();
    let strides: Vec<isize> = row_major(&dims).iter().map(|&s| -(s as isize)).collect();
    let fwd: Vec<isize> = row_major(&dims).iter().map(|&s| s as isize).collect();
    let mut dst = vec![0u16; n];
    copy_strided(&dims, &src, n - 1, &strides, &mut dst, 0, &fwd);
    assert_eq!(dst, src.iter().rev().copied().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// gather

fn naive_gather(
    outer: usize,
    axis_len: usize,
    inner: usize,
    data: &[f32],
    idx: &[i64],
) -> Result<Vec<f32>, KernelError> {
    let mut resolved = Vec::new();
    for &i in idx {
        let r = if i < 0 { i + axis_len as i64 } else { i };
        if r < 0 || r >= axis_len as i64 {
            return Err(KernelError::IndexOutOfRange {
                index: i,
                len: axis_len,
            });
        }
        resolved.push(r as usize);
    }
    let mut out = Vec::new();
    for o in 0..outer {
        for &r in &resolved {
            for i in 0..inner {
                out.push(data[(o * axis_len + r) * inner + i]);
            }
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gather_matches_naive(outer in 0usize..4, axis_len in 0usize..6, inner in 0usize..5, raw in proptest::collection::vec(-8i64..8, 0..7), bad_ok in any::<bool>()) {
        // Mostly in-range indices (negatives included); sometimes leave the raw values.
        let l = axis_len as i64;
        let idx: Vec<i64> = raw.iter().map(|&i| if bad_ok || l == 0 { i } else { i.rem_euclid(2 * l) - l }).collect();
        let data: Vec<f32> = (0..outer * axis_len * inner).map(|v| v as f32).collect();
        let want = naive_gather(outer, axis_len, inner, &data, &idx);
        let mut got = vec![-1.0f32; outer * idx.len() * inner];
        let r = gather(outer, axis_len, inner, &data, &idx, &mut got);
        match want {
            Ok(w) => { prop_assert_eq!(r, Ok(())); prop_assert_eq!(got, w); }
            Err(e) => {
                prop_assert_eq!(r, Err(e));
                // Validation happens before any write.
                prop_assert!(got.iter().all(|&v| v == -1.0));
            }
        }
    }
}

#[test]
fn gather_fixed_cases() {
    // data [3, 2] gathered on axis 0 with [-1, 0, 2].
    let data = [1, 2, 3, 4, 5, 6];
    let mut out = [0; 6];
    assert_eq!(gather(1, 3, 2, &data, &[-1, 0, 2], &mut out), Ok(()));
    assert_eq!(out, [5, 6, 1, 2, 5, 6]);
    // Out of range, both directions.
    assert_eq!(
        gather(1, 3, 2, &data, &[0, 3], &mut out),
        Err(KernelError::IndexOutOfRange { index: 3, len: 3 })
    );
    assert_eq!(
        gather(1, 3, 2, &data, &[-4], &mut out),
        Err(KernelError::IndexOutOfRange { index: -4, len: 3 })
    );
    assert_eq!(
        gather(1, 3, 2, &data, &[i64::MIN], &mut out),
        Err(KernelError::IndexOutOfRange {
            index: i64::MIN,
            len: 3
        })
    );
    assert_eq!(
        gather(1, 3, 2, &data, &[i64::MAX], &mut out),
        Err(KernelError::IndexOutOfRange {
            index: i64::MAX,
            len: 3
        })
    );
    // Axis 1 of [2, 3]: outer 2, inner 1.
    let mut out = [0; 4];
    assert_eq!(gather(2, 3, 1, &data, &[2, -3], &mut out), Ok(()));
    assert_eq!(out, [3, 1, 6, 4]);
    // Scalar index (n_idx = 1) and empty indices.
    let mut out = [0; 2];
    assert_eq!(gather(1, 3, 2, &data, &[1], &mut out), Ok(()));
    assert_eq!(out, [3, 4]);
    assert_eq!(gather::<i32>(1, 3, 2, &data, &[], &mut []), Ok(()));
}

fn naive_gather_elements(
    data_dims: &[usize],
    idx_dims: &[usize],
    axis: usize,
    data: &[i32],
    idx: &[i64],
) -> Result<Vec<i32>, KernelError> {
    let total: usize = idx_dims.iter().product();
    let ds = row_major(data_dims);
    let mut out = Vec::new();
    for (flat, &raw) in idx.iter().enumerate().take(total) {
        let mut m = unravel(flat, idx_dims);
        let len = data_dims[axis];
        let r = if raw < 0 { raw + len as i64 } else { raw };
        if r < 0 || r >= len as i64 {
            return Err(KernelError::IndexOutOfRange { index: raw, len });
        }
        m[axis] = r as usize;
        out.push(data[m.iter().zip(&ds).map(|(a, b)| a * b).sum::<usize>()]);
    }
    Ok(out)
}

fn gather_elements_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, usize, Vec<i64>)> {
    proptest::collection::vec(1usize..5, 1..=4)
        .prop_flat_map(|dd| {
            let r = dd.len();
            (
                Just(dd.clone()),
                0..r,
                proptest::collection::vec(0usize..5, r),
            )
        })
        .prop_flat_map(|(dd, axis, raw)| {
            // Index dims: <= data dims off the axis (0 allowed), anything on the axis.
            let id: Vec<usize> = dd
                .iter()
                .zip(&raw)
                .enumerate()
                .map(|(k, (&d, &x))| if k == axis { x } else { x.min(d) })
                .collect();
            let n: usize = id.iter().product();
            let len = dd[axis] as i64;
            (
                Just(dd),
                Just(id),
                Just(axis),
                proptest::collection::vec(prop_oneof![20 => -len..len, 1 => -len - 3..len + 3], n),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gather_elements_matches_naive((dd, id, axis, idx) in gather_elements_case()) {
        let data: Vec<i32> = (0..dd.iter().product::<usize>() as i32).collect();
        let want = naive_gather_elements(&dd, &id, axis, &data, &idx);
        let mut got = vec![-1i32; idx.len()];
        let r = gather_elements(&dd, &id, axis, &data, &idx, &mut got);
        match want {
            Ok(w) => { prop_assert_eq!(r, Ok(())); prop_assert_eq!(got, w); }
            Err(e) => { prop_assert_eq!(r, Err(e)); prop_assert!(got.iter().all(|&v| v == -1)); }
        }
    }
}

#[test]
fn gather_elements_fixed() {
    // ONNX example: data [[1,2],[3,4]], indices [[0,0],[1,0]], axis 1 -> [[1,1],[4,3]].
    let mut out = [0; 4];
    assert_eq!(
        gather_elements(&[2, 2], &[2, 2], 1, &[1, 2, 3, 4], &[0, 0, 1, 0], &mut out),
        Ok(())
    );
    assert_eq!(out, [1, 1, 4, 3]);
    // ONNX example 2: data 3x3, indices [[1,2,0],[2,0,0]], axis 0 -> [[4,8,3],[7,2,3]].
    let data = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut out = [0; 6];
    assert_eq!(
        gather_elements(&[3, 3], &[2, 3], 0, &data, &[1, 2, 0, 2, 0, 0], &mut out),
        Ok(())
    );
    assert_eq!(out, [4, 8, 3, 7, 2, 3]);
    // Negative index and an out-of-range one.
    assert_eq!(
        gather_elements(&[3, 3], &[2, 3], 0, &data, &[-2, 2, 0, 2, 0, 0], &mut out),
        Ok(())
    );
    assert_eq!(out[0], 4);
    assert_eq!(
        gather_elements(&[3, 3], &[2, 3], 0, &data, &[1, 2, 0, 2, 3, 0], &mut out),
        Err(KernelError::IndexOutOfRange { index: 3, len: 3 })
    );
}

// ---------------------------------------------------------------------------------------------
// argmax / argmin

fn naive_argmax(
    outer: usize,
    axis_len: usize,
    inner: usize,
    min: bool,
    last: bool,
    x: &[f32],
) -> Vec<i64> {
    // Rank key: (is NaN, value); NaN above everything, all NaNs equal, -0 == +0.
    let key = |v: f32| {
        if v.is_nan() {
            (1u8, 0.0f64)
        } else {
            (0u8, v as f64 + 0.0)
        }
    };
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let keys: Vec<(u8, f64)> = (0..axis_len)
                .map(|j| key(x[(o * axis_len + j) * inner + i]))
                .collect();
            let better = |a: (u8, f64), b: (u8, f64)| if min { a < b } else { a > b };
            let mut best = keys[0];
            for &k in &keys {
                if better(k, best) {
                    best = k;
                }
            }
            let hits: Vec<usize> = (0..axis_len).filter(|&j| keys[j] == best).collect();
            out.push(if last { *hits.last().unwrap() } else { hits[0] } as i64);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn argmax_matches_naive(
        outer in 0usize..4, axis_len in 1usize..7, inner in prop_oneof![1usize..4, 60usize..140], min in any::<bool>(), last in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Few distinct values so that ties are common; some NaN and infinities.
        let pool = [0.0f32, -0.0, 1.0, -1.0, 2.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let mut rng = Rng(seed | 1);
        let x: Vec<f32> = (0..outer * axis_len * inner).map(|_| pool[rng.below(pool.len())]).collect();
        let want = naive_argmax(outer, axis_len, inner, min, last, &x);
        let mut got = vec![-7i64; outer * inner];
        argmax_f32(outer, axis_len, inner, min, last, &x, &mut got);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn argmax_fixed() {
    let x = [1.0, 3.0, 3.0, -2.0];
    let mut out = [0i64];
    argmax_f32(1, 4, 1, false, false, &x, &mut out);
    assert_eq!(out[0], 1);
    argmax_f32(1, 4, 1, false, true, &x, &mut out);
    assert_eq!(out[0], 2);
    argmax_f32(1, 4, 1, true, false, &x, &mut out);
    assert_eq!(out[0], 3);
    let x = [1.0, f32::NAN, 5.0, f32::NAN];
    argmax_f32(1, 4, 1, false, false, &x, &mut out);
    assert_eq!(out[0], 1);
    argmax_f32(1, 4, 1, false, true, &x, &mut out);
    assert_eq!(out[0], 3);
    argmax_f32(1, 4, 1, true, false, &x, &mut out);
    assert_eq!(out[0], 0);
    // Over the middle axis of [1, 3, 2].
    let x = [0.0, 9.0, 5.0, 1.0, 7.0, 2.0];
    let mut out = [0i64; 2];
    argmax_f32(1, 3, 2, false, false, &x, &mut out);
    assert_eq!(out, [2, 0]);
    // An empty axis writes 0.
    let mut out = [5i64; 2];
    argmax_f32(2, 0, 1, false, false, &[], &mut out);
    assert_eq!(out, [0, 0]);
}

// ---------------------------------------------------------------------------------------------
// pad

/// Source coordinate by repeated folding (independent of the kernel's modular formula).
fn naive_src(mode: PadMode, o: usize, begin: isize, n: usize) -> Option<usize> {
    let mut s = o as isize - begin;
    let n = n as isize;
    if (0..n).contains(&s) {
        return Some(s as usize);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(s.clamp(0, n - 1) as usize),
        PadMode::Reflect => {
            while !(0..n).contains(&s) {
                if s < 0 {
                    s = -s;
                }
                if s >= n {
                    s = 2 * (n - 1) - s;
                }
            }
            Some(s as usize)
        }
    }
}

fn naive_pad(
    mode: PadMode,
    in_dims: &[usize],
    out_dims: &[usize],
    begin: &[isize],
    value: i32,
    x: &[i32],
) -> Vec<i32> {
    let total: usize = out_dims.iter().product();
    let s = row_major(in_dims);
    (0..total)
        .map(|flat| {
            let o = unravel(flat, out_dims);
            let mut off = 0;
            for k in 0..o.len() {
                match naive_src(mode, o[k], begin[k], in_dims[k]) {
                    Some(c) => off += c * s[k],
                    None => return value,
                }
            }
            x[off]
        })
        .collect()
}

fn pad_case() -> impl Strategy<Value = (PadMode, Vec<usize>, Vec<isize>, Vec<isize>)> {
    (
        prop::sample::select(vec![PadMode::Constant, PadMode::Reflect, PadMode::Edge]),
        proptest::collection::vec(1usize..6, 0..=4),
    )
        .prop_flat_map(|(mode, dims)| {
            // Reflect needs n >= 2 on padded axes and pads <= n - 1 (ONNX); crops keep >= 0 elements.
            let per_axis: Vec<_> = dims
                .iter()
                .map(|&n| {
                    let n = n as isize;
                    let maxpad = if mode == PadMode::Reflect { n - 1 } else { 3 };
                    (-n / 2..=maxpad, -n / 2..=maxpad)
                })
                .collect();
            (Just(mode), Just(dims), per_axis)
        })
        .prop_map(|(mode, dims, pads)| {
            let begin = pads.iter().map(|p| p.0).collect();
            let end = pads.iter().map(|p| p.1).collect();
            (mode, dims, begin, end)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pad_matches_naive((mode, in_dims, begin, end) in pad_case(), value in -5i32..5) {
        let out_dims: Vec<usize> = (0..in_dims.len()).map(|k| (in_dims[k] as isize + begin[k] + end[k]) as usize).collect();
        let x: Vec<i32> = (0..in_dims.iter().product::<usize>() as i32).map(|v| v + 100).collect();
        let want = naive_pad(mode, &in_dims, &out_dims, &begin, value, &x);
        let mut got = vec![-99i32; want.len()];
        pad(mode, &in_dims, &out_dims, &begin, value, &x, &mut got);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn pad_fixed() {
    // ONNX examples on [3, 2] = [[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]], pads [0, 2, 0, 0].
    let x = [1.0f32, 1.2, 2.3, 3.4, 4.5, 5.7];
    let mut out = [0.0f32; 12];
    pad(
        PadMode::Constant,
        &[3, 2],
        &[3, 4],
        &[0, 2],
        0.0,
        &x,
        &mut out,
    );
    assert_eq!(
        out,
        [0.0, 0.0, 1.0, 1.2, 0.0, 0.0, 2.3, 3.4, 0.0, 0.0, 4.5, 5.7]
    );
    pad(
        PadMode::Reflect,
        &[3, 2],
        &[3, 4],
        &[0, 2],
        0.0,
        &x,
        &mut out,
    );
    assert_eq!(
        out,
        [1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7]
    );
    pad(PadMode::Edge, &[3, 2], &[3, 4], &[0, 2], 0.0, &x, &mut out);
    assert_eq!(
        out,
        [1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7]
    );
    // Reflect a row [a b c] by 2 on both sides: c b | a b c | b a.
    let mut out = [0; 7];
    pad(PadMode::Reflect, &[3], &[7], &[2], 0, &[1, 2, 3], &mut out);
    assert_eq!(out, [3, 2, 1, 2, 3, 2, 1]);
    // Negative begin crops: [1 2 3 4] with begin -1, end +1 (constant 0) -> [2 3 4 0].
    let mut out = [9; 4];
    pad(
        PadMode::Constant,
        &[4],
        &[4],
        &[-1],
        0,
        &[1, 2, 3, 4],
        &mut out,
    );
    assert_eq!(out, [2, 3, 4, 0]);
    // Crop on an outer axis with edge padding on the inner one.
    let mut out = [0; 4];
    pad(
        PadMode::Edge,
        &[2, 2],
        &[1, 4],
        &[-1, 1],
        0,
        &[1, 2, 3, 4],
        &mut out,
    );
    assert_eq!(out, [3, 3, 4, 4]);
    // Rank 0.
    let mut out = [0];
    pad(PadMode::Constant, &[], &[], &[], 5, &[7], &mut out);
    assert_eq!(out, [7]);
    // Everything cropped away on one axis: nothing written.
    let mut out: [i32; 0] = [];
    pad(
        PadMode::Constant,
        &[2, 3],
        &[0, 3],
        &[-2, 0],
        0,
        &[1, 2, 3, 4, 5, 6],
        &mut out,
    );
}
