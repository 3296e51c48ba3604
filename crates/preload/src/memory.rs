//! The caller's buffers as Rust slices.
//!
//! C lets a zero-length buffer be a null (or any) pointer; a Rust slice must never be built
//! from a null or misaligned pointer, whatever its length. These helpers are the one place
//! the shim turns a caller's pointer and length into a slice.

/// The `length` bytes at `pointer`; empty when `length` is 0 or `pointer` is null.
///
/// # Safety
/// Unless `length` is 0 or `pointer` null, `pointer` is readable for `length` bytes. (A C
/// program gives no promise that another of its threads leaves them alone meanwhile; the
/// shim holds such a slice only for the copy it makes of the bytes, as libc's own calls
/// read them.)
pub(crate) unsafe fn bytes<'a>(pointer: *const u8, length: usize) -> &'a [u8] {
    if length == 0 || pointer.is_null() {
        return &[];
    }
    // SAFETY: non-null (checked), and readable for `length` bytes per the caller; `u8`
    // needs no alignment.
    unsafe { std::slice::from_raw_parts(pointer, length) }
}

/// The `length` writable bytes at `pointer`; empty when `length` is 0 or `pointer` is null.
///
/// # Safety
/// Unless `length` is 0 or `pointer` null, `pointer` is writable for `length` bytes, and
/// nothing else reads or writes them while the slice lives.
pub(crate) unsafe fn bytes_mut<'a>(pointer: *mut u8, length: usize) -> &'a mut [u8] {
    if length == 0 || pointer.is_null() {
        return &mut [];
    }
    // SAFETY: non-null (checked), and writable for `length` bytes per the caller.
    unsafe { std::slice::from_raw_parts_mut(pointer, length) }
}

/// The `count` entries of a C array; empty when `count` is 0 or `pointer` is null.
///
/// # Safety
/// Unless `count` is 0 or `pointer` null, `pointer` is aligned for `T` and readable for
/// `count` entries (the C array a caller passes is).
pub(crate) unsafe fn entries<'a, T>(pointer: *const T, count: usize) -> &'a [T] {
    if count == 0 || pointer.is_null() {
        return &[];
    }
    // SAFETY: per the caller.
    unsafe { std::slice::from_raw_parts(pointer, count) }
}
