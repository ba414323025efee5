//! Typed views of raw bytes: the one place that reinterprets model or arena bytes as numbers.

use crate::error::{Error, Result};

/// Plain element types that any bit pattern is a valid value of.
///
/// # Safety
/// Implementors must be `Copy`, have no padding and no invalid bit patterns.
pub unsafe trait Elem: Copy + 'static {}
// SAFETY: primitive integers and floats have no padding and accept every bit pattern.
unsafe impl Elem for f32 {}
// SAFETY: as above.
unsafe impl Elem for i64 {}
// SAFETY: as above.
unsafe impl Elem for u64 {}
// SAFETY: as above.
unsafe impl Elem for u128 {}
// SAFETY: as above.
unsafe impl Elem for i32 {}
// SAFETY: as above.
unsafe impl Elem for u32 {}
// SAFETY: as above.
unsafe impl Elem for u16 {}
// SAFETY: as above.
unsafe impl Elem for i8 {}
// SAFETY: as above.
unsafe impl Elem for u8 {}

/// Views `b` as a slice of `T`; fails if `b` is misaligned for `T` or not a whole number of `T`.
pub fn cast<T: Elem>(b: &[u8]) -> Result<&[T]> {
    // SAFETY: `T: Elem` accepts any bit pattern; `align_to` only puts correctly aligned,
    // in-bounds elements in the middle part, and we reject any prefix or suffix.
    let (pre, mid, post) = unsafe { b.align_to::<T>() };
    if !pre.is_empty() || !post.is_empty() {
        return Err(Error::Misaligned {
            what: "tensor data",
            required: core::mem::align_of::<T>(),
        });
    }
    Ok(mid)
}

/// Mutable version of [`cast`].
pub fn cast_mut<T: Elem>(b: &mut [u8]) -> Result<&mut [T]> {
    // SAFETY: as in `cast`; any bit pattern written through `T` is a valid byte sequence.
    let (pre, mid, post) = unsafe { b.align_to_mut::<T>() };
    if !pre.is_empty() || !post.is_empty() {
        return Err(Error::Misaligned {
            what: "tensor data",
            required: core::mem::align_of::<T>(),
        });
    }
    Ok(mid)
}

/// Views a slice of elements as bytes.
pub fn bytes_of<T: Elem>(x: &[T]) -> &[u8] {
    // SAFETY: `T: Elem` has no padding, so every byte of the slice is initialised; the length
    // is the slice's size in bytes and u8 has alignment 1.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), core::mem::size_of_val(x)) }
}

/// A region of the arena, by byte offset and length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    pub offset: usize,
    pub len: usize,
}

/// Splits one step's operands out of the arena: shared views of the input regions and one
/// exclusive view of the output region.
pub(crate) struct ArenaSplit<'s> {
    base: *mut u8,
    len: usize,
    _arena: core::marker::PhantomData<&'s mut [u8]>,
}

impl<'s> ArenaSplit<'s> {
    pub fn new(arena: &'s mut [u8]) -> Self {
        ArenaSplit {
            base: arena.as_mut_ptr(),
            len: arena.len(),
            _arena: core::marker::PhantomData,
        }
    }

    /// Shared view of an input region.
    ///
    /// # Safety
    /// No live `&mut` view returned by [`Self::output`] may overlap `r` while the result lives.
    pub unsafe fn input(&self, r: Region) -> Option<&'s [u8]> {
        if r.offset.checked_add(r.len).is_none_or(|e| e > self.len) {
            return None;
        }
        // SAFETY: in bounds (checked above); the caller guarantees no overlapping mutable view.
        Some(unsafe { core::slice::from_raw_parts(self.base.add(r.offset), r.len) })
    }

    /// Exclusive view of an output region.
    ///
    /// # Safety
    /// No other live view (input or output) may overlap `r` while the result lives.
    pub unsafe fn output(&self, r: Region) -> Option<&'s mut [u8]> {
        if r.offset.checked_add(r.len).is_none_or(|e| e > self.len) {
            return None;
        }
        // SAFETY: in bounds (checked above); the caller guarantees exclusivity.
        Some(unsafe { core::slice::from_raw_parts_mut(self.base.add(r.offset), r.len) })
    }
}

/// Mutable version of [`bytes_of`].
pub fn bytes_of_mut<T: Elem>(x: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; any byte pattern written is a valid `T` (`T: Elem`).
    unsafe {
        core::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<u8>(), core::mem::size_of_val(x))
    }
}
