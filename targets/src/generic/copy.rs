//! Strided copies: the one primitive behind Transpose, Slice, Concat, Split, Expand.

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
    todo!()
}
