//! Corrupt-file matrix: hand-made bad variants of valid `.mote` files must be refused with the
//! right typed [`Error`], and no input (hand-made or pseudo-random) may make the loader or the
//! executor panic.
//!
//! Every structural corruption rewrites the checksum afterwards, so the test reaches the check it
//! is aimed at instead of stopping at the checksum.

use mote::format::{
    align_up, checksum, section, Header, SectionEntry, StepRecord, TensorRecord, CHECKSUM_AT,
    HEADER_LEN, MAX_RANK, NO_TENSOR, SECTION_ENTRY_LEN, STEP_RECORD_LEN, TENSOR_RECORD_LEN,
};
use mote::ops::code;
use mote::{AlignedBytes, Error, Model, OwnedSession};
use mote_tests::{convert_file, repo_root};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Base files and helpers
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    let p = repo_root()
        .join("tests/fixtures/ops")
        .join(name)
        .join("model.onnx");
    convert_file(&p)
        .unwrap_or_else(|e| panic!("converting {}: {e:#}", p.display()))
        .as_slice()
        .to_vec()
}

/// An op fixture converted without the element-wise fusion (so Compare, Logic and Where
/// stay steps of their own).
fn fixture_unfused(name: &str) -> Vec<u8> {
    let p = repo_root()
        .join("tests/fixtures/ops")
        .join(name)
        .join("model.onnx");
    let opts = mote_tools::convert::Options {
        target: "generic".into(),
        fuse_elementwise: false,
        ..Default::default()
    };
    mote_tools::convert::convert(&p, &opts)
        .unwrap_or_else(|e| panic!("converting {}: {e:#}", p.display()))
        .bytes
}

/// `block_composite`: Conv2d, depthwise Conv2d, Binary, Reduce, MatMul; constants and arena.
fn block() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| fixture("block_composite"))
}

/// `concat_axis1_3in_const`: three Copy steps into one output, one constant source.
fn concat() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| fixture("concat_axis1_3in_const"))
}

/// Validates `bytes` (copied into an aligned buffer); a panic fails the test with `what`.
fn open(bytes: &[u8]) -> Result<(), Error> {
    let buf = AlignedBytes::copy_from(bytes);
    catch_unwind(AssertUnwindSafe(|| {
        Model::from_bytes(buf.as_slice()).map(|_| ())
    }))
    .unwrap_or_else(|_| panic!("Model::from_bytes panicked"))
}

/// Asserts that opening `$bytes` fails with an error matching `$pat`.
macro_rules! assert_err {
    ($bytes:expr, $pat:pat $(if $guard:expr)?) => {{
        let r = open(&$bytes);
        match r {
            Err($pat) $(if $guard)? => {}
            other => panic!(
                "{}:{}: expected Err({}), got {:?}",
                file!(),
                line!(),
                stringify!($pat),
                other
            ),
        }
    }};
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Rewrites the checksum field so that it matches the (mutated) contents.
fn fix_checksum(b: &mut [u8]) {
    if b.len() >= CHECKSUM_AT + 8 {
        let ck = checksum(b);
        put_u64(b, CHECKSUM_AT, ck);
    }
}

/// Header field offsets (see `engine/FORMAT.md`).
const AT_MAJOR: usize = 8;
const AT_MINOR: usize = 10;
const AT_FLAGS: usize = 12;
const AT_LAYOUT: usize = 16;
const AT_SECTION_COUNT: usize = 20;
const AT_FILE_LEN: usize = 24;
const AT_ARENA: usize = 32;

/// A mutable copy of a valid file with accessors for its sections and records.
#[derive(Clone)]
struct File {
    b: Vec<u8>,
}

impl File {
    fn new(base: &[u8]) -> File {
        File { b: base.to_vec() }
    }
    fn header(&self) -> Header {
        Header::parse(&self.b).expect("header")
    }
    fn section_count(&self) -> usize {
        get_u32(&self.b, AT_SECTION_COUNT) as usize
    }
    fn entry(&self, i: usize) -> SectionEntry {
        SectionEntry::parse(&self.b, i).expect("section entry")
    }
    fn set_entry(&mut self, i: usize, e: SectionEntry) {
        let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
        self.b[at..at + SECTION_ENTRY_LEN].copy_from_slice(&e.encode());
    }
    /// Index of the table entry of `kind`.
    fn entry_of(&self, kind: u32) -> usize {
        (0..self.section_count())
            .find(|&i| self.entry(i).kind == kind)
            .unwrap_or_else(|| panic!("no section {kind}"))
    }
    fn range(&self, kind: u32) -> Range<usize> {
        let e = self.entry(self.entry_of(kind));
        e.offset as usize..(e.offset + e.len) as usize
    }
    fn sec(&self, kind: u32) -> &[u8] {
        &self.b[self.range(kind)]
    }
    fn n_tensors(&self) -> usize {
        self.range(section::TENSORS).len() / TENSOR_RECORD_LEN
    }
    fn n_steps(&self) -> usize {
        self.range(section::STEPS).len() / STEP_RECORD_LEN
    }
    fn tensor(&self, i: usize) -> TensorRecord {
        TensorRecord::parse(self.sec(section::TENSORS), i).expect("tensor record")
    }
    fn set_tensor(&mut self, i: usize, r: TensorRecord) {
        let at = self.range(section::TENSORS).start + i * TENSOR_RECORD_LEN;
        self.b[at..at + TENSOR_RECORD_LEN].copy_from_slice(&r.encode());
    }
    fn edit_tensor(&mut self, i: usize, f: impl FnOnce(&mut TensorRecord)) {
        let mut r = self.tensor(i);
        f(&mut r);
        self.set_tensor(i, r);
    }
    fn step(&self, i: usize) -> StepRecord {
        StepRecord::parse(self.sec(section::STEPS), i).expect("step record")
    }
    fn set_step(&mut self, i: usize, r: StepRecord) {
        let at = self.range(section::STEPS).start + i * STEP_RECORD_LEN;
        self.b[at..at + STEP_RECORD_LEN].copy_from_slice(&r.encode());
    }
    fn edit_step(&mut self, i: usize, f: impl FnOnce(&mut StepRecord)) {
        let mut r = self.step(i);
        f(&mut r);
        self.set_step(i, r);
    }
    /// Parameter word `k` of step `i`.
    fn param_at(&self, i: usize, k: usize) -> usize {
        let s = self.step(i);
        assert!(k < s.params_len as usize);
        self.range(section::PARAMS).start + 4 * (s.params_at as usize + k)
    }
    fn param(&self, i: usize, k: usize) -> u32 {
        get_u32(&self.b, self.param_at(i, k))
    }
    fn set_param(&mut self, i: usize, k: usize, v: u32) {
        let at = self.param_at(i, k);
        put_u32(&mut self.b, at, v);
    }
    /// Word `k` of the io section (0 = n_in, 1 = n_out, then ids).
    fn io_at(&self, k: usize) -> usize {
        self.range(section::IO).start + 4 * k
    }
    fn first_tensor(&self, storage: u8) -> usize {
        (0..self.n_tensors())
            .find(|&i| self.tensor(i).storage == storage)
            .expect("tensor of that storage")
    }
    /// The bytes with the checksum rewritten.
    fn fixed(&self) -> Vec<u8> {
        let mut b = self.b.clone();
        fix_checksum(&mut b);
        b
    }
}

/// The sections of a valid file, in table order.
fn split(b: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let f = File::new(b);
    (0..f.section_count())
        .map(|i| {
            let e = f.entry(i);
            (
                e.kind,
                b[e.offset as usize..(e.offset + e.len) as usize].to_vec(),
            )
        })
        .collect()
}

/// Lays sections out as the converter does: table after the header, each section 8-byte
/// aligned (weights 64-byte aligned), checksum last.
fn assemble(minor: u16, arena: u64, sections: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + sections.len() * SECTION_ENTRY_LEN];
    let mut table = vec![];
    for (kind, data) in sections {
        let align = if *kind == section::WEIGHTS { 64 } else { 8 };
        let at = align_up(out.len() as u64, align) as usize;
        out.resize(at, 0);
        out.extend_from_slice(data);
        table.push(SectionEntry {
            kind: *kind,
            offset: at as u64,
            len: data.len() as u64,
        });
    }
    for (i, e) in table.iter().enumerate() {
        let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
        out[at..at + SECTION_ENTRY_LEN].copy_from_slice(&e.encode());
    }
    let h = Header {
        major: 1,
        minor,
        flags: 0,
        layout: 0,
        section_count: table.len() as u32,
        file_len: out.len() as u64,
        arena_size: arena,
        checksum: 0,
    };
    out[..HEADER_LEN].copy_from_slice(&h.encode());
    fix_checksum(&mut out);
    out
}

/// Loads `bytes`; when they validate, runs the model once on zeroed inputs (arena permitting).
/// Returns the load result; panics (with `what`) if loading or running panicked.
fn load_and_run(bytes: &[u8], what: &str) -> Result<(), Error> {
    let buf = AlignedBytes::copy_from(bytes);
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), Error> {
        let m = Model::from_bytes(buf.as_slice())?;
        // A validated model's accessors cannot fail on in-range indices.
        for i in 0..m.tensor_count() {
            m.tensor(i as u32).expect("tensor of a validated model");
        }
        for i in 0..m.step_count() {
            m.step(i).expect("step of a validated model");
        }
        for i in 0..m.input_count() {
            m.input(i).expect("input of a validated model");
        }
        for i in 0..m.output_count() {
            m.output(i).expect("output of a validated model");
        }
        if m.arena_size() <= 1 << 26 && !known_slow(&m) {
            if let Ok(mut owned) = OwnedSession::new(&m) {
                if let Ok(mut s) = owned.session() {
                    let _ = s.run();
                }
            }
        }
        Ok(())
    }));
    r.unwrap_or_else(|_| panic!("panic while loading or running: {what}"))
}

/// Steps whose work is not bounded by any tensor size, so a hostile file can make them run for
/// hours (a known limitation, not a safety issue): a pooling window of billions of taps.
fn known_slow(m: &Model<'_>) -> bool {
    (0..m.step_count()).any(|i| match m.step(i).map(|s| s.op) {
        Ok(mote::ops::Op::Pool2d { g, .. }) => g.kh.saturating_mul(g.kw) > 1 << 12,
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------------
// Sanity: the bases are valid, and the helpers reproduce the converter's layout
// ---------------------------------------------------------------------------------------------

#[test]
fn bases_are_valid_and_run() {
    for base in [block(), concat()] {
        assert_eq!(open(base), Ok(()));
        assert_eq!(load_and_run(base, "base"), Ok(()));
        let h = Header::parse(base).unwrap();
        assert_eq!(h.checksum, checksum(base));
        assert_eq!(h.file_len as usize, base.len());
        // Re-laying out the sections gives back the identical file.
        assert_eq!(assemble(0, h.arena_size, &split(base)), base);
    }
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_and_tiny_buffers() {
    assert_err!([], Error::Truncated { .. });
    for n in 1..HEADER_LEN {
        assert_err!(block()[..n], Error::Truncated { what: "header" });
    }
    // Fewer than 64 bytes, wrong magic.
    assert_err!(*b"hello, world", Error::BadMagic);
    assert_err!([0u8; 63], Error::BadMagic);
}

#[test]
fn bad_magic() {
    for i in 0..8 {
        let mut f = File::new(block());
        f.b[i] ^= 0x20;
        assert_err!(f.fixed(), Error::BadMagic);
    }
    // A text-mode conversion of "\r\n" to "\n" breaks the magic.
    let mut b = block().to_vec();
    b.remove(6);
    assert_err!(b, Error::BadMagic);
}

#[test]
fn versions() {
    for (major, minor) in [(2u16, 0u16), (0, 0), (0, 1), (2, 7), (u16::MAX, 0)] {
        let mut f = File::new(block());
        put_u16(&mut f.b, AT_MAJOR, major);
        put_u16(&mut f.b, AT_MINOR, minor);
        assert_err!(
            f.fixed(),
            Error::UnsupportedVersion { major: a, minor: b } if a == major && b == minor
        );
    }
    // Any minor of major 1 is accepted.
    for minor in [1u16, 2, 9, u16::MAX] {
        let mut f = File::new(block());
        put_u16(&mut f.b, AT_MINOR, minor);
        assert_eq!(open(&f.fixed()), Ok(()), "minor {minor}");
    }
}

#[test]
fn unknown_section_kinds_need_a_minor_above_zero() {
    for base in [block(), concat()] {
        let arena = Header::parse(base).unwrap().arena_size;
        let mut secs = split(base);
        secs.push((99, vec![1, 2, 3, 4, 5]));
        secs.insert(2, (7, vec![]));
        assert_eq!(open(&assemble(1, arena, &secs)), Ok(()));
        assert_eq!(open(&assemble(3, arena, &secs)), Ok(()));
        assert_err!(
            assemble(0, arena, &secs),
            Error::BadSection {
                kind: 7,
                reason: "unknown section kind in a version 1.0 file"
            }
        );
        // Kind 0 is reserved in every minor.
        let mut secs = split(base);
        secs.push((0, vec![0; 8]));
        assert_err!(
            assemble(1, arena, &secs),
            Error::BadSection {
                kind: 0,
                reason: "section kind 0 is reserved"
            }
        );
    }
}

#[test]
fn nonzero_flags() {
    for flags in [1u32, 0x8000_0000, u32::MAX] {
        let mut f = File::new(block());
        put_u32(&mut f.b, AT_FLAGS, flags);
        assert_err!(
            f.fixed(),
            Error::BadSection {
                kind: 0,
                reason: "unknown header flags"
            }
        );
    }
}

#[test]
fn unsupported_layout() {
    for layout in [2u32, 7, u32::MAX] {
        let mut f = File::new(block());
        put_u32(&mut f.b, AT_LAYOUT, layout);
        assert_err!(f.fixed(), Error::UnsupportedLayout { layout: l } if l == layout);
    }
}

#[test]
fn file_len_field_disagrees_with_the_buffer() {
    let n = block().len() as u64;
    for len in [n + 1, n + 64, u64::MAX] {
        let mut f = File::new(block());
        put_u64(&mut f.b, AT_FILE_LEN, len);
        assert_err!(f.fixed(), Error::Truncated { .. });
    }
    for len in [n - 1, 64, 0] {
        let mut f = File::new(block());
        put_u64(&mut f.b, AT_FILE_LEN, len);
        assert_err!(
            f.fixed(),
            Error::BadSection {
                kind: 0,
                reason: "buffer is longer than the length in the header"
            }
        );
    }
    // Trailing bytes the header does not count.
    let mut b = block().to_vec();
    b.extend_from_slice(&[0; 16]);
    assert_err!(b, Error::BadSection { kind: 0, .. });
}

#[test]
fn arena_size_above_the_cap() {
    let mut f = File::new(block());
    put_u64(&mut f.b, AT_ARENA, mote::format::caps::ARENA + 1);
    assert_err!(
        f.fixed(),
        Error::TooLarge {
            what: "arena size",
            ..
        }
    );
}

#[test]
fn section_count_above_the_cap() {
    for count in [33u32, 1000, u32::MAX] {
        let mut f = File::new(block());
        put_u32(&mut f.b, AT_SECTION_COUNT, count);
        assert_err!(
            f.fixed(),
            Error::TooLarge {
                what: "section count",
                value: v,
                cap: 32
            } if v == count as u64
        );
    }
    // Within the cap, but the table would run past the end of the file.
    let mut b = block()[..300].to_vec();
    put_u64(&mut b, AT_FILE_LEN, 300);
    put_u32(&mut b, AT_SECTION_COUNT, 32);
    fix_checksum(&mut b);
    assert_err!(
        b,
        Error::Truncated {
            what: "section table"
        }
    );
}

#[test]
fn misaligned_buffer() {
    let base = block();
    for shift in [1usize, 2, 4, 8, 12] {
        // A byte vector whose allocation does not move: place the file `shift` bytes past a
        // 16-byte boundary inside it.
        let mut v: Vec<u8> = Vec::with_capacity(base.len() + 32);
        let p = v.as_ptr() as usize;
        let start = (0..32).find(|&k| (p + k) % 16 == shift).unwrap();
        v.resize(start, 0);
        v.extend_from_slice(base);
        assert_eq!(v.as_ptr() as usize, p);
        let s = &v[start..];
        assert_eq!(s.as_ptr() as usize % 16, shift);
        let r = catch_unwind(AssertUnwindSafe(|| Model::from_bytes(s).map(|_| ())))
            .expect("from_bytes panicked");
        assert_eq!(
            r,
            Err(Error::Misaligned {
                what: "model buffer",
                required: 16
            })
        );
    }
    // The same bytes at a 16-byte aligned address are fine.
    let mut v: Vec<u8> = Vec::with_capacity(base.len() + 32);
    let p = v.as_ptr() as usize;
    let start = (0..32).find(|&k| (p + k).is_multiple_of(16)).unwrap();
    v.resize(start, 0);
    v.extend_from_slice(base);
    assert!(Model::from_bytes(&v[start..]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

/// Every byte of the header and table, every section boundary (±1), then a stride.
fn truncation_points(f: &File) -> Vec<usize> {
    let len = f.b.len();
    let table_end = HEADER_LEN + f.section_count() * SECTION_ENTRY_LEN;
    let mut pts: Vec<usize> = (0..=table_end).collect();
    for i in 0..f.section_count() {
        let e = f.entry(i);
        for p in [e.offset, e.offset + e.len] {
            let p = p as usize;
            pts.extend([p.saturating_sub(1), p, p + 1]);
        }
    }
    pts.extend((table_end..len).step_by(7));
    pts.retain(|&p| p < len);
    pts.sort_unstable();
    pts.dedup();
    pts
}

#[test]
fn truncated_files_are_refused() {
    for base in [block(), concat()] {
        let f = File::new(base);
        let table_end = HEADER_LEN + f.section_count() * SECTION_ENTRY_LEN;
        for l in truncation_points(&f) {
            let cut = &base[..l];
            // As cut: the header's length no longer matches.
            if l < HEADER_LEN {
                assert_err!(cut, Error::Truncated { .. });
            } else {
                assert_err!(
                    cut,
                    Error::Truncated {
                        what: "file (header length is larger than the buffer)"
                    }
                );
                // With the header's length and checksum rewritten to match the cut.
                let mut b = cut.to_vec();
                put_u64(&mut b, AT_FILE_LEN, l as u64);
                fix_checksum(&mut b);
                if l < table_end {
                    assert_err!(
                        b,
                        Error::Truncated {
                            what: "section table"
                        }
                    );
                } else {
                    let first_cut = (0..f.section_count())
                        .map(|i| f.entry(i))
                        .find(|e| e.offset + e.len > l as u64)
                        .unwrap();
                    assert_err!(
                        b,
                        Error::BadSection {
                            kind: k,
                            reason: "extends past the end of the file"
                        } if k == first_cut.kind
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checksum
// ---------------------------------------------------------------------------------------------

#[test]
fn checksum_catches_a_flipped_byte_in_each_section() {
    for base in [block(), concat()] {
        let f = File::new(base);
        let stored = f.header().checksum;
        let mut spots: Vec<usize> = vec![
            CHECKSUM_AT,     // the checksum field itself
            CHECKSUM_AT + 7, // its last byte
            50,              // reserved header bytes
            63,
            HEADER_LEN + 4, // reserved bytes of a table entry
        ];
        for i in 0..f.section_count() {
            let e = f.entry(i);
            if e.len > 0 {
                spots.extend([
                    e.offset as usize,
                    (e.offset + e.len / 2) as usize,
                    (e.offset + e.len - 1) as usize,
                ]);
            }
        }
        for at in spots {
            let mut b = base.to_vec();
            b[at] ^= 0x10;
            let computed = checksum(&b);
            let stored_now =
                u64::from_le_bytes(b[CHECKSUM_AT..CHECKSUM_AT + 8].try_into().unwrap());
            if !(CHECKSUM_AT..CHECKSUM_AT + 8).contains(&at) {
                assert_eq!(stored_now, stored);
            }
            assert_err!(
                b,
                Error::ChecksumMismatch { stored: s, computed: c } if s == stored_now && c == computed
            );
        }
    }
}

#[test]
fn every_single_byte_change_is_refused() {
    let base = block();
    let mut seed = 0x1234_5678_9abc_def0u64;
    for at in 0..base.len() {
        let mut b = base.to_vec();
        b[at] ^= (xorshift(&mut seed) % 255 + 1) as u8;
        if !(CHECKSUM_AT..CHECKSUM_AT + 8).contains(&at) {
            // The checksum covers every byte but its own field.
            assert_ne!(checksum(&b), checksum(base), "byte {at}");
        }
        let r = open(&b);
        if at >= AT_ARENA + 8 {
            assert!(
                matches!(r, Err(Error::ChecksumMismatch { .. })),
                "byte {at}: {r:?}"
            );
        } else {
            assert!(r.is_err(), "byte {at}: accepted");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Section table
// ---------------------------------------------------------------------------------------------

#[test]
fn section_offset_past_the_end() {
    let f0 = File::new(block());
    let len = f0.b.len() as u64;
    for i in 0..f0.section_count() {
        let mut f = f0.clone();
        let mut e = f.entry(i);
        e.offset = align_up(len + 8, 64);
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind, reason: "extends past the end of the file" } if kind == e.kind
        );
        // Starts in the file, runs past its end.
        let mut f = f0.clone();
        let mut e = f.entry(i);
        e.len = len - e.offset + 1;
        f.set_entry(i, e);
        assert_err!(f.fixed(), Error::BadSection { kind, .. } if kind == e.kind);
    }
}

#[test]
fn section_length_overflow() {
    let f0 = File::new(block());
    for i in 0..f0.section_count() {
        let mut f = f0.clone();
        let mut e = f.entry(i);
        e.len = u64::MAX - e.offset + 1; // offset + len wraps to 0
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind, reason: "offset + length overflows" } if kind == e.kind
        );
        let mut f = f0.clone();
        let mut e = f.entry(i);
        e.offset = u64::MAX - 7;
        e.len = 16;
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind, reason: "offset + length overflows" } if kind == e.kind
        );
    }
}

#[test]
fn section_inside_header_or_table() {
    let f0 = File::new(block());
    for off in [0u64, 8, 64, (HEADER_LEN + 5 * SECTION_ENTRY_LEN) as u64] {
        let mut f = f0.clone();
        let mut e = f.entry(0);
        e.offset = off;
        e.len = 8;
        f.set_entry(0, e);
        assert_err!(
            f.fixed(),
            Error::BadSection {
                kind: section::STRINGS,
                reason: "starts inside the header or section table"
            }
        );
    }
}

#[test]
fn overlapping_sections() {
    let f0 = File::new(block());
    // Entry 1 (tensors) moved onto entry 0 (strings), and a partial overlap.
    let s = f0.entry(0);
    for off in [s.offset, s.offset + 8] {
        let mut f = f0.clone();
        let mut e = f.entry(1);
        e.offset = off;
        f.set_entry(1, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind, reason: "overlaps another section" } if kind == e.kind
        );
    }
    // The last section grown backwards over its predecessor (weights must stay 64-aligned).
    let mut f = f0.clone();
    let n = f.section_count();
    let prev = f.entry(n - 2);
    let mut e = f.entry(n - 1);
    let new_off = align_up(prev.offset + prev.len, 64) - 64;
    assert!(new_off < prev.offset + prev.len);
    e.len += e.offset - new_off;
    e.offset = new_off;
    f.set_entry(n - 1, e);
    assert_err!(
        f.fixed(),
        Error::BadSection {
            reason: "overlaps another section",
            ..
        }
    );
}

#[test]
fn duplicated_section_kind() {
    let f0 = File::new(block());
    for (i, dup) in [
        (1usize, section::STRINGS),
        (5, section::IO),
        (3, section::STEPS),
    ] {
        let mut f = f0.clone();
        let mut e = f.entry(i);
        e.kind = dup;
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind, reason: "appears twice" } if kind == dup
        );
    }
}

#[test]
fn missing_required_section() {
    let f0 = File::new(block());
    for kind in section::REQUIRED {
        // Renamed to an unknown kind (allowed from minor 1 on, so the missing one is reported).
        let mut f = f0.clone();
        put_u16(&mut f.b, AT_MINOR, 1);
        let i = f.entry_of(kind);
        let mut e = f.entry(i);
        e.kind = 40;
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind: k, reason: "required section is missing" } if k == kind
        );
    }
    // The table shortened so the last entry (weights) is no longer part of it.
    let mut f = f0.clone();
    let n = f.section_count() as u32;
    put_u32(&mut f.b, AT_SECTION_COUNT, n - 1);
    assert_err!(
        f.fixed(),
        Error::BadSection {
            kind: section::WEIGHTS,
            reason: "required section is missing"
        }
    );
    // No sections at all.
    let mut f = f0.clone();
    put_u32(&mut f.b, AT_SECTION_COUNT, 0);
    assert_err!(
        f.fixed(),
        Error::BadSection {
            reason: "required section is missing",
            ..
        }
    );
}

#[test]
fn misaligned_sections() {
    let f0 = File::new(block());
    // Weights moved 8 bytes later (still 8-aligned, no longer 64-aligned).
    let mut f = f0.clone();
    let i = f.entry_of(section::WEIGHTS);
    let mut e = f.entry(i);
    e.offset += 8;
    e.len -= 8;
    f.set_entry(i, e);
    assert_err!(
        f.fixed(),
        Error::BadSection {
            kind: section::WEIGHTS,
            reason: "misaligned offset"
        }
    );
    // Other sections need 8-byte alignment.
    let mut f = f0.clone();
    let i = f.entry_of(section::STRINGS);
    let mut e = f.entry(i);
    e.offset += 4;
    e.len -= 4;
    f.set_entry(i, e);
    assert_err!(
        f.fixed(),
        Error::BadSection {
            kind: section::STRINGS,
            reason: "misaligned offset"
        }
    );
}

#[test]
fn record_sections_of_odd_length() {
    let f0 = File::new(block());
    for (kind, cut) in [
        (section::TENSORS, 8u64),
        (section::STEPS, 8),
        (section::PARAMS, 2),
    ] {
        let mut f = f0.clone();
        let i = f.entry_of(kind);
        let mut e = f.entry(i);
        e.len -= cut;
        f.set_entry(i, e);
        assert_err!(
            f.fixed(),
            Error::BadSection { kind: k, .. } if k == kind
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor records
// ---------------------------------------------------------------------------------------------

#[test]
fn tensor_rank_above_the_maximum() {
    for rank in [9u8, 64, 255] {
        let mut f = File::new(block());
        f.edit_tensor(0, |r| r.rank = rank);
        assert_err!(
            f.fixed(),
            Error::BadTensor {
                index: 0,
                reason: "rank above 8"
            }
        );
    }
}

#[test]
fn tensor_dims() {
    let f0 = File::new(block());
    let i = f0.first_tensor(1);
    // Element count overflows u64: (2^32 - 1) * 4 fits under the cap, the next factor wraps.
    let mut f = f0.clone();
    f.edit_tensor(i, |r| {
        r.rank = 3;
        r.dims = [0; MAX_RANK];
        r.dims[..3].copy_from_slice(&[u32::MAX, 4, u32::MAX]);
    });
    assert_err!(
        f.fixed(),
        Error::BadTensor { index, reason: "element count overflows" } if index == i as u32
    );
    // Element count above the cap.
    let mut f = f0.clone();
    f.edit_tensor(i, |r| {
        r.rank = 8;
        r.dims = [u32::MAX; MAX_RANK];
    });
    assert_err!(
        f.fixed(),
        Error::TooLarge {
            what: "tensor elements",
            ..
        }
    );
    let mut f = f0.clone();
    f.edit_tensor(i, |r| {
        r.rank = 2;
        r.dims = [0; MAX_RANK];
        r.dims[..2].copy_from_slice(&[1 << 17, 1 << 18]); // 2^35 elements
    });
    assert_err!(
        f.fixed(),
        Error::TooLarge {
            what: "tensor elements",
            value: v,
            cap: c
        } if v == 1 << 35 && c == 1 << 34
    );
    // Nonzero dims past the rank.
    let mut f = f0.clone();
    f.edit_tensor(i, |r| r.dims[MAX_RANK - 1] = 1);
    assert_err!(
        f.fixed(),
        Error::BadTensor { index, reason: "dims past the rank are not zero" } if index == i as u32
    );
}

#[test]
fn tensor_byte_len_inconsistent() {
    let f0 = File::new(block());
    for i in 0..f0.n_tensors() {
        for delta in [1i64, -1, 4, 1 << 40] {
            let mut f = f0.clone();
            f.edit_tensor(i, |r| r.byte_len = r.byte_len.wrapping_add(delta as u64));
            assert_err!(
                f.fixed(),
                Error::BadTensor { index, reason: "byte length does not match dtype and shape" }
                    if index == i as u32
            );
        }
    }
    // The dtype changed under the same shape: byte length no longer matches.
    let mut f = f0.clone();
    f.edit_tensor(0, |r| r.dtype = mote::DType::I64 as u8);
    assert_err!(
        f.fixed(),
        Error::BadTensor {
            index: 0,
            reason: "byte length does not match dtype and shape"
        }
    );
}

#[test]
fn const_tensor_outside_the_weights() {
    let f0 = File::new(block());
    let wlen = f0.range(section::WEIGHTS).len() as u64;
    let i = f0.first_tensor(0);
    let idx = i as u32;
    for off in [align_up(wlen, 64), align_up(wlen, 64) - 64, u64::MAX - 63] {
        let mut f = f0.clone();
        f.edit_tensor(i, |r| r.offset = off);
        let b = f.fixed();
        let r = open(&b);
        assert!(
            matches!(
                r,
                Err(Error::BadTensor {
                    index,
                    reason: "constant data extends past the weights section" | "offset overflows"
                }) if index == idx
            ),
            "offset {off}: {r:?}"
        );
    }
    let mut f = f0.clone();
    f.edit_tensor(i, |r| r.offset += 4);
    assert_err!(
        f.fixed(),
        Error::BadTensor { index, reason: "constant data is not 64-byte aligned" } if index == idx
    );
}

#[test]
fn arena_tensor_outside_the_arena() {
    let f0 = File::new(block());
    let arena = f0.header().arena_size;
    let i = f0.first_tensor(1);
    let idx = i as u32;
    for off in [align_up(arena, 64), align_up(arena, 64) - 64, 1 << 40] {
        let mut f = f0.clone();
        f.edit_tensor(i, |r| r.offset = off);
        assert_err!(
            f.fixed(),
            Error::BadTensor { index, reason: "extends past the arena" } if index == idx
        );
    }
    let mut f = f0.clone();
    f.edit_tensor(i, |r| r.offset = u64::MAX - 63);
    assert_err!(
        f.fixed(),
        Error::BadTensor { index, reason: "offset overflows" } if index == idx
    );
    let mut f = f0.clone();
    f.edit_tensor(i, |r| r.offset += 16);
    assert_err!(
        f.fixed(),
        Error::BadTensor { index, reason: "arena offset is not 64-byte aligned" } if index == idx
    );
    // The arena shrunk under the plan: one byte less than the furthest tensor end.
    let max_end = (0..f0.n_tensors())
        .map(|i| f0.tensor(i))
        .filter(|r| r.storage == 1)
        .map(|r| r.offset + r.byte_len)
        .max()
        .unwrap();
    let mut f = f0.clone();
    put_u64(&mut f.b, AT_ARENA, max_end - 1);
    assert_err!(
        f.fixed(),
        Error::BadTensor {
            reason: "extends past the arena",
            ..
        }
    );
}

#[test]
fn unknown_dtype_and_storage() {
    let f0 = File::new(block());
    for dtype in [0u8, 8, 200, 255] {
        let mut f = f0.clone();
        f.edit_tensor(1, |r| r.dtype = dtype);
        assert_err!(
            f.fixed(),
            Error::BadTensor {
                index: 1,
                reason: "unknown dtype"
            }
        );
    }
    for storage in [2u8, 255] {
        let mut f = f0.clone();
        f.edit_tensor(1, |r| r.storage = storage);
        assert_err!(
            f.fixed(),
            Error::BadTensor {
                index: 1,
                reason: "unknown storage"
            }
        );
    }
}

#[test]
fn tensor_names() {
    let f0 = File::new(block());
    let slen = f0.range(section::STRINGS).len() as u32;
    for (off, len) in [
        (slen, 1u32),
        (slen - 1, 2),
        (u32::MAX, 1),
        (0, u32::MAX),
        (u32::MAX, u32::MAX),
    ] {
        let mut f = f0.clone();
        f.edit_tensor(2, |r| {
            r.name_off = off;
            r.name_len = len;
        });
        assert_err!(
            f.fixed(),
            Error::BadTensor {
                index: 2,
                reason: "name out of range"
            }
        );
    }
    // An empty name at the very end of the strings is fine.
    let mut f = f0.clone();
    f.edit_tensor(2, |r| {
        r.name_off = slen;
        r.name_len = 0;
    });
    assert_eq!(open(&f.fixed()), Ok(()));
    // Non-UTF-8 bytes in a name.
    let i = (0..f0.n_tensors())
        .find(|&i| f0.tensor(i).name_len > 0)
        .unwrap();
    for bad in [0xffu8, 0xc0, 0x80] {
        let mut f = f0.clone();
        let at = f.range(section::STRINGS).start + f.tensor(i).name_off as usize;
        f.b[at] = bad;
        assert_err!(
            f.fixed(),
            Error::BadTensor { index, reason: "name is not UTF-8" } if index == i as u32
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

#[test]
fn step_with_unknown_op_id() {
    for op in [0u16, code::ELEMENTWISE_REDUCE + 1, 1000, u16::MAX] {
        let mut f = File::new(block());
        f.edit_step(1, |s| s.op = op);
        assert_err!(
            f.fixed(),
            Error::BadStep {
                index: 1,
                reason: "unknown op id"
            }
        );
    }
}

#[test]
fn step_params_range_outside_the_params_section() {
    let f0 = File::new(block());
    let words = (f0.range(section::PARAMS).len() / 4) as u32;
    let last = f0.n_steps() - 1;
    for (at, len) in [(words, 1u32), (words - 1, 2), (u32::MAX, 19), (u32::MAX, 0)] {
        let mut f = f0.clone();
        f.edit_step(0, |s| {
            s.params_at = at;
            s.params_len = len;
        });
        let b = f.fixed();
        let r = open(&b);
        assert!(
            matches!(
                r,
                Err(Error::BadStep {
                    index: 0,
                    reason: "parameter range is outside the params section"
                })
            ),
            "params {at}+{len}: {r:?}"
        );
    }
    // The last step's range grown past the end.
    let mut f = f0.clone();
    f.edit_step(last, |s| s.params_len += 1);
    assert_err!(
        f.fixed(),
        Error::BadStep { index, reason: "parameter range is outside the params section" }
            if index == last as u32
    );
    // Above the per-step cap.
    let mut f = f0.clone();
    f.edit_step(0, |s| s.params_len = mote::format::caps::STEP_PARAMS + 1);
    assert_err!(
        f.fixed(),
        Error::TooLarge {
            what: "step parameter words",
            ..
        }
    );
}

#[test]
fn step_params_too_short_or_too_long() {
    let f0 = File::new(block());
    for i in 0..f0.n_steps() - 1 {
        let mut f = f0.clone();
        f.edit_step(i, |s| s.params_len += 1);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "parameter list is too long" } if index == i as u32
        );
    }
    for i in 0..f0.n_steps() {
        let mut f = f0.clone();
        f.edit_step(i, |s| s.params_len -= 1);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "parameter list is too short" } if index == i as u32
        );
        let mut f = f0.clone();
        f.edit_step(i, |s| s.params_len = 0);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "parameter list is too short" } if index == i as u32
        );
    }
}

#[test]
fn step_tensor_ids_out_of_range() {
    let f0 = File::new(block());
    let n = f0.n_tensors() as u32;
    for id in [n, n + 1, NO_TENSOR - 1] {
        let mut f = f0.clone();
        f.edit_step(1, |s| s.inputs[0] = id);
        assert_err!(
            f.fixed(),
            Error::BadStep {
                index: 1,
                reason: "input tensor id out of range"
            }
        );
        let mut f = f0.clone();
        f.edit_step(1, |s| s.output = id);
        assert_err!(
            f.fixed(),
            Error::BadStep {
                index: 1,
                reason: "output tensor id out of range"
            }
        );
    }
    // NO_TENSOR as output is not "absent": it is out of range.
    let mut f = f0.clone();
    f.edit_step(1, |s| s.output = NO_TENSOR);
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 1,
            reason: "output tensor id out of range"
        }
    );
    // A required operand marked absent.
    let mut f = f0.clone();
    f.edit_step(1, |s| s.inputs[1] = NO_TENSOR);
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 1,
            reason: "a required operand is missing"
        }
    );
    // An extra operand.
    let mut f = f0.clone();
    let c = f.first_tensor(0) as u32;
    f.edit_step(1, |s| s.inputs[3] = c);
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 1,
            reason: "too many operands"
        }
    );
}

#[test]
fn step_output_is_a_constant() {
    let f0 = File::new(block());
    let c = f0.first_tensor(0) as u32;
    for i in 0..f0.n_steps() {
        let mut f = f0.clone();
        f.edit_step(i, |s| s.output = c);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "output must live in the arena" } if index == i as u32
        );
    }
}

#[test]
fn step_input_overlaps_its_output() {
    let f0 = File::new(block());
    for i in 0..f0.n_steps() {
        // The output fed back as an input. Element-wise ops may compute in place over operand
        // 0, so for them the output is fed back as operand 1 instead.
        let mut f = f0.clone();
        let op = f0.step(i).op;
        let slot = if [code::BINARY, code::UNARY, code::CHANNEL_AFFINE].contains(&op) {
            1
        } else {
            0
        };
        f.edit_step(i, |s| s.inputs[slot] = s.output);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "an input overlaps the output in the arena" }
                if index == i as u32
        );
    }
    // An input record moved onto the output's arena bytes (partial overlap).
    let mut f = f0.clone();
    let s = f.step(0);
    let out = f.tensor(s.output as usize);
    let x = s.inputs[0] as usize;
    f.edit_tensor(x, |r| r.offset = out.offset + 64);
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 0,
            reason: "an input overlaps the output in the arena"
        }
    );
}

#[test]
fn step_operand_dtypes() {
    let f0 = File::new(block());
    // The conv input retyped as int32 (same byte length).
    let mut f = f0.clone();
    let x = f.step(0).inputs[0] as usize;
    f.edit_tensor(x, |r| r.dtype = mote::DType::I32 as u8);
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 0,
            reason: "operand must be float32"
        }
    );
}

#[test]
fn conv_geometry_that_does_not_match_its_operands() {
    let f0 = File::new(block());
    assert_eq!(f0.step(0).op, code::CONV2D);
    // Words: n c_in h_in w_in c_out h_out w_out kh kw sh sw dh dw pt pl groups act p0 p1.
    for (k, v) in [
        (0usize, 2u32),
        (1, 4),
        (2, 9),
        (4, 7),
        (5, 7),
        (7, 2),
        (8, 5),
    ] {
        let mut f = f0.clone();
        f.set_param(0, k, v);
        assert_err!(
            f.fixed(),
            Error::BadStep {
                index: 0,
                reason: "operand element count does not match the step's geometry"
            }
        );
    }
    for (k, v, reason) in [
        (15usize, 0u32, "conv groups must divide the channel counts"),
        (15, 2, "conv groups must divide the channel counts"),
        (9, 0, "conv kernel, stride and dilation must be positive"),
        (11, 0, "conv kernel, stride and dilation must be positive"),
        (16, 9, "parameter enum value out of range"),
    ] {
        let mut f = f0.clone();
        f.set_param(0, k, v);
        assert_err!(
            f.fixed(),
            Error::BadStep { index: 0, reason: r } if r == reason
        );
    }
    // Huge padding and stride are harmless: every tap falls in the padding.
    for (k, v) in [
        (13usize, u32::MAX),
        (14, u32::MAX),
        (9, u32::MAX),
        (12, u32::MAX),
    ] {
        let mut f = f0.clone();
        f.set_param(0, k, v);
        assert_eq!(load_and_run(&f.fixed(), "conv geometry"), Ok(()));
    }
}

#[test]
fn other_op_parameters_out_of_range() {
    let f0 = File::new(block());
    let find = |op: u16| (0..f0.n_steps()).find(|&i| f0.step(i).op == op).unwrap();
    // Binary: unknown op kind, rank above 8, dims that do not match the output.
    let b = find(code::BINARY);
    for (k, v, reason) in [
        (0usize, 7u32, "parameter enum value out of range"),
        (1, 9, "rank above the maximum"),
        (
            2,
            511,
            "operand element count does not match the step's geometry",
        ),
        (4, 2, "broadcast strides reach past an operand"),
    ] {
        let mut f = f0.clone();
        f.set_param(b, k, v);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: r } if index == b as u32 && r == reason
        );
    }
    // Reduce: a mask bit past the rank.
    let r = find(code::REDUCE);
    let words = f0.step(r).params_len as usize;
    let mut f = f0.clone();
    f.set_param(r, words - 1, 1 << 4);
    assert_err!(
        f.fixed(),
        Error::BadStep { index, reason: "reduce mask names an axis past the rank" }
            if index == r as u32
    );
    // MatMul: strides reaching past A and B.
    let m = find(code::MATMUL);
    // Words (batch_rank 0): batch_rank m n k a_rs a_cs b_rs b_cs alpha act p0 p1.
    assert_eq!(f0.param(m, 0), 0);
    for (k, reason) in [
        (3usize, "matmul reaches past the end of A"),
        (5, "matmul reaches past the end of A"),
        (6, "matmul reaches past the end of B"),
        (7, "matmul reaches past the end of B"),
    ] {
        let mut f = f0.clone();
        let v = f.param(m, k);
        f.set_param(m, k, v + 1);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: rr } if index == m as u32 && rr == reason
        );
    }
    let mut f = f0.clone();
    f.set_param(m, 0, 7);
    assert_err!(
        f.fixed(),
        Error::BadStep { index, reason: "rank above the maximum" } if index == m as u32
    );
}

#[test]
fn copy_step_strides_reaching_outside_its_tensors() {
    let f0 = File::new(concat());
    assert!((0..f0.n_steps()).all(|i| f0.step(i).op == code::COPY));
    // Words (rank 1): rank dims0 src_off src_stride0 dst_off dst_stride0.
    let cases: [(usize, usize, u32); 8] = [
        (0, 2, 1),              // source offset one past
        (0, 3, 2),              // source stride doubled
        (0, 3, (-1i32) as u32), // negative source stride from offset 0
        (0, 1, 19),             // one more element than the source holds
        (2, 4, 46),             // destination offset one past
        (2, 5, 2),              // destination stride doubled
        (2, 5, (-1i32) as u32), // backwards from 45: stays inside, accepted (see below)
        (1, 2, u32::MAX),       // source offset 2^32 - 1
    ];
    for (i, k, v) in cases {
        let mut f = f0.clone();
        f.set_param(i, k, v);
        let b = f.fixed();
        let r = open(&b);
        if (i, k, v) == (2, 5, (-1i32) as u32) {
            // dst 45, 44, ..., 37: inside the output, a legal (reversed) copy.
            assert_eq!(r, Ok(()));
            assert_eq!(load_and_run(&b, "reversed copy"), Ok(()));
            continue;
        }
        assert!(
            matches!(
                r,
                Err(Error::BadStep {
                    index,
                    reason: "strided copy reaches outside its tensor"
                }) if index == i as u32
            ),
            "step {i} word {k} = {v}: {r:?}"
        );
    }
    // Copy between dtypes of different sizes: the f32 [1,2,3,3] source retyped as an
    // int64 [1,1,3,3] (same bytes).
    let mut f = f0.clone();
    let src = f.step(0).inputs[0] as usize;
    assert_eq!(f.tensor(src).dims[..4], [1, 2, 3, 3]);
    f.edit_tensor(src, |r| {
        r.dtype = mote::DType::I64 as u8;
        r.dims[1] = 1;
    });
    assert_err!(
        f.fixed(),
        Error::BadStep {
            index: 0,
            reason: "copy between dtypes of different sizes"
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Graph inputs and outputs
// ---------------------------------------------------------------------------------------------

#[test]
fn io_section() {
    let f0 = File::new(block());
    // Counts that do not match the section length.
    for (k, v) in [(0usize, 2u32), (1, 2), (0, 0), (1, u32::MAX)] {
        let mut f = f0.clone();
        let at = f.io_at(k);
        put_u32(&mut f.b, at, v);
        let b = f.fixed();
        let r = open(&b);
        assert!(
            matches!(
                r,
                Err(Error::BadIo {
                    reason: "io section length does not match its counts"
                }) | Err(Error::TooLarge {
                    what: "graph input + output count",
                    ..
                })
            ),
            "io word {k} = {v}: {r:?}"
        );
    }
    let mut f = f0.clone();
    let (a, b) = (f.io_at(0), f.io_at(1));
    put_u32(&mut f.b, a, 3000);
    put_u32(&mut f.b, b, 3000);
    assert_err!(
        f.fixed(),
        Error::TooLarge {
            what: "graph input + output count",
            value: 6000,
            cap: 4096
        }
    );
    // Zero outputs, with the section shortened to match.
    let mut f = f0.clone();
    let at = f.io_at(1);
    put_u32(&mut f.b, at, 0);
    let i = f.entry_of(section::IO);
    let mut e = f.entry(i);
    e.len -= 4;
    f.set_entry(i, e);
    assert_err!(
        f.fixed(),
        Error::BadIo {
            reason: "the graph has no outputs"
        }
    );
    // An io section too short for its two counts.
    let mut f = f0.clone();
    let mut e = f.entry(i);
    e.len = 4;
    f.set_entry(i, e);
    assert_err!(f.fixed(), Error::Truncated { what: "io section" });
    // Tensor ids out of range, or naming a constant.
    let n = f0.n_tensors() as u32;
    let c = f0.first_tensor(0) as u32;
    for k in [2usize, 3] {
        let mut f = f0.clone();
        let at = f.io_at(k);
        put_u32(&mut f.b, at, n);
        assert_err!(
            f.fixed(),
            Error::BadIo {
                reason: "tensor id out of range"
            }
        );
        let mut f = f0.clone();
        let at = f.io_at(k);
        put_u32(&mut f.b, at, c);
        assert_err!(
            f.fixed(),
            Error::BadIo {
                reason: "graph inputs and outputs must live in the arena"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile geometry in hand-built files
// ---------------------------------------------------------------------------------------------

/// A file with the given tensors, steps (op, inputs, output, params) and io, no weights.
fn build(
    tensors: &[TensorRecord],
    steps: &[(u16, [u32; 4], u32, Vec<u32>)],
    inputs: &[u32],
    outputs: &[u32],
    arena: u64,
) -> Vec<u8> {
    let mut t = vec![];
    for r in tensors {
        t.extend_from_slice(&r.encode());
    }
    let mut s = vec![];
    let mut p: Vec<u8> = vec![];
    for (op, ins, out, words) in steps {
        let rec = StepRecord {
            op: *op,
            inputs: *ins,
            output: *out,
            params_at: (p.len() / 4) as u32,
            params_len: words.len() as u32,
        };
        for w in words {
            p.extend_from_slice(&w.to_le_bytes());
        }
        s.extend_from_slice(&rec.encode());
    }
    let mut io = vec![];
    for w in [inputs.len() as u32, outputs.len() as u32]
        .iter()
        .chain(inputs)
        .chain(outputs)
    {
        io.extend_from_slice(&w.to_le_bytes());
    }
    assemble(
        0,
        arena,
        &[
            (section::STRINGS, b"x".to_vec()),
            (section::TENSORS, t),
            (section::STEPS, s),
            (section::PARAMS, p),
            (section::IO, io),
            (section::WEIGHTS, vec![]),
        ],
    )
}

fn f32_arena(dims: &[u32], offset: u64) -> TensorRecord {
    let mut d = [0u32; MAX_RANK];
    d[..dims.len()].copy_from_slice(dims);
    TensorRecord {
        name_off: 0,
        name_len: 1,
        dtype: mote::DType::F32 as u8,
        rank: dims.len() as u8,
        storage: 1,
        dims: d,
        offset,
        byte_len: 4 * dims.iter().map(|&x| x as u64).product::<u64>(),
    }
}

const N: u32 = NO_TENSOR;
const BIG: u32 = u32::MAX;

#[test]
fn hand_built_file_runs() {
    // x[4] -> Unary Neg -> y[4]; a positive control for `build`.
    let b = build(
        &[f32_arena(&[4], 0), f32_arena(&[4], 64)],
        &[(code::UNARY, [0, N, N, N], 1, vec![8, 0, 0])],
        &[0],
        &[1],
        128,
    );
    assert_eq!(load_and_run(&b, "unary"), Ok(()));
}

#[test]
fn reduce_with_an_empty_axis_and_huge_others() {
    // x has a zero leading dim, so it holds no elements, but the trailing dims' product
    // overflows usize: the kernel's row-major strides must not be computed from it.
    let b = build(
        &[f32_arena(&[0], 0), f32_arena(&[0], 0)],
        &[(
            code::REDUCE,
            [0, N, N, N],
            1,
            vec![0, 4, 0, BIG, BIG, BIG, 0b1110],
        )],
        &[0],
        &[1],
        64,
    );
    let r = load_and_run(&b, "reduce over an empty axis");
    assert!(matches!(r, Err(Error::BadStep { index: 0, .. })), "{r:?}");
}

#[test]
fn pad_of_an_empty_input_with_huge_dims() {
    // Constant pad from [0, BIG, BIG, BIG] to [1, 1, 1, 1] (crop of the huge axes).
    let b = build(
        &[f32_arena(&[0], 0), f32_arena(&[1], 0)],
        &[(
            code::PAD,
            [0, N, N, N],
            1,
            vec![0, 4, 0, BIG, BIG, BIG, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
        )],
        &[0],
        &[1],
        64,
    );
    let r = load_and_run(&b, "pad of an empty input");
    assert!(matches!(r, Err(Error::BadStep { index: 0, .. })), "{r:?}");
}

#[test]
fn copy_with_zero_strides_and_huge_dims() {
    // Every iteration reads and writes element 0: in bounds, but 2^96 iterations.
    let b = build(
        &[f32_arena(&[1], 0), f32_arena(&[1], 64)],
        &[(
            code::COPY,
            [0, N, N, N],
            1,
            vec![3, BIG, BIG, BIG, 0, 0, 0, 0, 0, 0, 0, 0],
        )],
        &[0],
        &[1],
        128,
    );
    let r = load_and_run(&b, "copy with zero strides");
    assert!(matches!(r, Err(Error::BadStep { index: 0, .. })), "{r:?}");
    // A legitimate broadcast copy (Expand) with a zero source stride still loads and runs.
    let b = build(
        &[f32_arena(&[1], 0), f32_arena(&[6], 64)],
        &[(code::COPY, [0, N, N, N], 1, vec![2, 2, 3, 0, 0, 0, 0, 3, 1])],
        &[0],
        &[1],
        128,
    );
    assert_eq!(load_and_run(&b, "expand"), Ok(()));
}

#[test]
fn pad_with_a_leading_pad_past_the_output() {
    // Pad words: mode rank in_dims.. out_dims.. begin.. value_lo value_hi. The last axis is
    // padded by `begin` in front and cropped by as much at the end: every output column is
    // padding, and the kernel's input window would start before the input.
    for (name, begin) in [
        ("pad_negative_crop", 7u32),
        ("pad_negative_crop", 64),
        ("pad_negative_crop", 0x7fff_ffff),
        ("pad_edge", 10),
        ("pad_edge", 64),
    ] {
        let base = fixture(name);
        let f0 = File::new(&base);
        assert_eq!(f0.step(0).op, code::PAD);
        let rank = f0.param(0, 1) as usize;
        let mut f = f0.clone();
        f.set_param(0, 2 + 3 * rank - 1, begin);
        let r = load_and_run(&f.fixed(), name);
        assert!(
            matches!(
                r,
                Err(Error::BadStep {
                    index: 0,
                    reason: "leading pad is longer than the output axis"
                })
            ),
            "{name}, begin {begin}: {r:?}"
        );
    }
}

#[test]
fn pool_window_arithmetic_overflow() {
    // One plane, a 2^32 - 1 row output (16 GiB of arena: validated, never allocated here) and a
    // window whose `oh * stride + ky * dil` exceeds isize::MAX.
    let mut out = f32_arena(&[BIG], 64);
    out.byte_len = 4 * BIG as u64;
    let b = build(
        &[f32_arena(&[1], 0), out],
        &[(
            code::POOL2D,
            [0, N, N, N],
            1,
            vec![0, 1, 1, 1, BIG, 1, BIG, 1, BIG, 1, BIG, 1, 0, 0],
        )],
        &[0],
        &[1],
        align_up(64 + 4 * BIG as u64, 64),
    );
    let r = load_and_run(&b, "pool window overflow");
    assert!(
        matches!(
            r,
            Err(Error::BadStep {
                index: 0,
                reason: "parameter out of range"
            })
        ),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pseudo-random mutations
// ---------------------------------------------------------------------------------------------

/// Mutations per base file: `n`, or `MOTE_CORRUPT_ITERS` for a longer local search.
fn iterations(n: u64) -> u64 {
    std::env::var("MOTE_CORRUPT_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

fn xorshift(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    x
}

fn below(s: &mut u64, n: usize) -> usize {
    (xorshift(s) % n as u64) as usize
}

const INTERESTING: [u32; 12] = [
    0,
    1,
    2,
    3,
    7,
    8,
    63,
    64,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// One seeded mutation of `base`; returns the bytes and a description.
fn mutate(base: &[u8], seed: u64) -> (Vec<u8>, String) {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..4 {
        xorshift(&mut s);
    }
    let f = File::new(base);
    let mut b = base.to_vec();
    let mut what = String::new();
    let mut fix = true;
    match below(&mut s, 10) {
        // Random byte changes anywhere.
        0..=3 => {
            for _ in 0..1 + below(&mut s, 4) {
                let at = below(&mut s, b.len());
                let x = (xorshift(&mut s) % 255 + 1) as u8;
                b[at] ^= x;
                what += &format!("b[{at}]^={x:#x} ");
            }
            // Now and then leave the checksum stale.
            fix = below(&mut s, 8) != 0;
        }
        // Interesting values in the words of the record sections (and header/table).
        4..=7 => {
            let kinds = [
                section::TENSORS,
                section::STEPS,
                section::PARAMS,
                section::IO,
                section::PARAMS,
                0,
            ];
            for _ in 0..1 + below(&mut s, 3) {
                let kind = kinds[below(&mut s, kinds.len())];
                let r = if kind == 0 {
                    0..HEADER_LEN + f.section_count() * SECTION_ENTRY_LEN
                } else {
                    f.range(kind)
                };
                let at = r.start + 4 * below(&mut s, r.len() / 4);
                let old = get_u32(&b, at);
                let v = match below(&mut s, 4) {
                    0 => INTERESTING[below(&mut s, INTERESTING.len())],
                    1 => old.wrapping_add(1),
                    2 => old.wrapping_sub(1),
                    _ => xorshift(&mut s) as u32 >> below(&mut s, 32),
                };
                put_u32(&mut b, at, v);
                what += &format!("w[{at}]={v:#x} ");
            }
        }
        // Truncation, with the header's length rewritten or not.
        8 => {
            let l = below(&mut s, b.len());
            b.truncate(l);
            let fix_len = below(&mut s, 2) == 0;
            if fix_len && l >= HEADER_LEN {
                put_u64(&mut b, AT_FILE_LEN, l as u64);
            }
            what += &format!("truncate {l} (len fixed: {fix_len}) ");
        }
        // Extension with garbage, length rewritten.
        _ => {
            let n = 1 + below(&mut s, 100);
            for _ in 0..n {
                b.push(xorshift(&mut s) as u8);
            }
            let l = b.len() as u64;
            put_u64(&mut b, AT_FILE_LEN, l);
            what += &format!("extend by {n} ");
        }
    }
    if fix {
        fix_checksum(&mut b);
    } else {
        what += "(checksum stale)";
    }
    (b, what)
}

#[test]
fn random_mutations_never_panic() {
    let mut failures = vec![];
    let mut accepted = 0;
    let mut total = 0;
    for (name, base) in [("block_composite", block()), ("concat", concat())] {
        for seed in 0..iterations(5000) {
            let (b, what) = mutate(base, seed);
            total += 1;
            let r = catch_unwind(AssertUnwindSafe(|| load_and_run(&b, &what)));
            match r {
                Ok(Ok(())) => accepted += 1,
                Ok(Err(_)) => {}
                Err(_) => failures.push(format!("{name} seed {seed}: {what}")),
            }
        }
    }
    println!("{total} mutations, {accepted} accepted");
    assert!(
        failures.is_empty(),
        "{} mutations panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Fixtures that together use every op id, the last three converted without the
/// element-wise fusion ([`fixture_unfused`]).
const UNFUSED: usize = 3;
const OP_FIXTURES: [&str; 29] = [
    "ew_lif_step",
    "block_composite",
    "concat_axis1_3in_const",
    "avgpool_3x3_s1_p1_incl_pad",
    "maxpool_3x3_s2_p1",
    "pad_reflect",
    "pad_edge",
    "pad_negative_crop",
    "gather_runtime_idx",
    "gatherelements_argmax",
    "softmax_axis1_rank4",
    "logsoftmax_axis_last",
    "layernorm_axis_last",
    "instnorm_rank4",
    "bn_rank4",
    "where_cmp_bcast",
    "and_cast",
    "not_cast",
    "argmax_axis1_keep1_ties",
    "matmul_batched_bcast",
    "reducemean_23_keep0",
    "slice_neg_step",
    "transpose_r6_035124",
    "expand_c11",
    "cast_i64_input",
    "neg",
    "where_cmp_bcast",
    "and_cast",
    "not_cast",
];

/// One seeded mutation aimed at one step: its parameter words, its record, or the records of
/// the tensors it names.
fn mutate_step(base: &[u8], seed: u64) -> (Vec<u8>, String) {
    let mut s = seed.wrapping_mul(0xd6e8_feb8_6659_fd93) | 1;
    for _ in 0..4 {
        xorshift(&mut s);
    }
    // Positions come from the unmutated file; the mutations go to `b`.
    let f = File::new(base);
    let mut b = base.to_vec();
    let mut what = String::new();
    for _ in 0..1 + below(&mut s, 3) {
        let i = below(&mut s, f.n_steps());
        let st = f.step(i);
        let at = match below(&mut s, 8) {
            0..=4 if st.params_len > 0 => f.param_at(i, below(&mut s, st.params_len as usize)),
            5 => f.range(section::STEPS).start + i * STEP_RECORD_LEN + 4 * below(&mut s, 8),
            _ => {
                let ids: Vec<u32> = st
                    .inputs
                    .iter()
                    .copied()
                    .chain([st.output])
                    .filter(|&t| t != NO_TENSOR)
                    .collect();
                let t = ids[below(&mut s, ids.len())] as usize;
                f.range(section::TENSORS).start + t * TENSOR_RECORD_LEN + 4 * below(&mut s, 16)
            }
        };
        let old = get_u32(&b, at);
        let v = match below(&mut s, 5) {
            0 | 1 => INTERESTING[below(&mut s, INTERESTING.len())],
            2 => old.wrapping_add(1),
            3 => old.wrapping_sub(1),
            _ => xorshift(&mut s) as u32 >> below(&mut s, 32),
        };
        put_u32(&mut b, at, v);
        what += &format!("step {i}: w[{at}]={v:#x} ");
    }
    fix_checksum(&mut b);
    (b, what)
}

#[test]
fn random_step_mutations_of_every_op_never_panic() {
    let mut failures = vec![];
    let mut accepted = 0;
    let mut total = 0;
    let mut ops_seen = std::collections::BTreeSet::new();
    for (k, name) in OP_FIXTURES.into_iter().enumerate() {
        let base = if k + UNFUSED >= OP_FIXTURES.len() {
            fixture_unfused(name)
        } else {
            fixture(name)
        };
        let f = File::new(&base);
        for i in 0..f.n_steps() {
            ops_seen.insert(f.step(i).op);
        }
        assert_eq!(load_and_run(&base, name), Ok(()), "{name}");
        for seed in 0..iterations(2000) {
            let (b, what) = mutate_step(&base, seed);
            total += 1;
            match catch_unwind(AssertUnwindSafe(|| load_and_run(&b, &what))) {
                Ok(Ok(())) => accepted += 1,
                Ok(Err(_)) => {}
                Err(_) => failures.push(format!("{name} seed {seed}: {what}")),
            }
        }
    }
    println!("{total} step mutations, {accepted} accepted");
    assert_eq!(
        ops_seen.into_iter().collect::<Vec<_>>(),
        (code::CONV2D..=code::POOL2D)
            .chain([code::ELEMENTWISE])
            .collect::<Vec<_>>(),
        "the fixtures no longer cover every op"
    );
    assert!(
        failures.is_empty(),
        "{} mutations panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Work bounds: steps whose loop lengths nothing else bounds
// ---------------------------------------------------------------------------------------------

#[test]
fn matmul_with_a_zero_contraction_stride_is_refused() {
    let f0 = File::new(block());
    let mm = (0..f0.n_steps())
        .find(|&i| f0.step(i).op == code::MATMUL)
        .unwrap();
    // The Gemm lowers with no batch dims: words [0, m, n, k, a_rs, a_cs, b_rs, b_cs, ...].
    assert_eq!(f0.param(mm, 0), 0);
    assert!(
        f0.param(mm, 3) > 1,
        "the fixture's Gemm contracts over more than one element"
    );
    for k in [5usize, 6] {
        let mut f = f0.clone();
        f.set_param(mm, k, 0);
        assert_err!(
            f.fixed(),
            Error::BadStep { index, reason: "matmul contraction stride is zero" } if index == mm as u32
        );
    }
}

#[test]
fn pool_window_beyond_the_work_cap_is_refused() {
    let f0 = File::new(&fixture("avgpool_2x2_s2"));
    let p = (0..f0.n_steps())
        .find(|&i| f0.step(i).op == code::POOL2D)
        .unwrap();
    // Words: [kind, planes, h_in, w_in, h_out, w_out, kh, kw, ...].
    let mut f = f0.clone();
    f.set_param(p, 6, 1 << 20);
    f.set_param(p, 7, 1 << 20);
    assert_err!(
        f.fixed(),
        Error::BadStep { index, reason: "pool window work exceeds the cap" } if index == p as u32
    );
    // A large but bounded window still loads.
    let mut f = f0.clone();
    f.set_param(p, 6, 64);
    assert!(open(&f.fixed()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Int8 steps (Quantize, Dequantize, QConv2d, QMatMul)
// ---------------------------------------------------------------------------------------------

/// `tests/fixtures/int8` converted with `--quant int8 --calibrate random:4`.
fn int8_model() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        use mote_tools::convert::quant::{Estimator, Int8Options};
        use mote_tools::convert::Quant;
        let p = repo_root().join("tests/fixtures/int8/model.onnx");
        let opts = mote_tools::convert::Options {
            target: "generic".into(),
            quant: Some(Quant::Int8),
            int8: Int8Options {
                calibrate: Some("random:4".into()),
                estimator: Estimator::MinMax,
            },
            ..Default::default()
        };
        mote_tools::convert::convert(&p, &opts)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .bytes
    })
}

#[test]
fn random_step_mutations_of_int8_steps_never_panic() {
    let base = int8_model();
    let f = File::new(base);
    let ops: std::collections::BTreeSet<u16> = (0..f.n_steps()).map(|i| f.step(i).op).collect();
    for op in [
        code::QUANTIZE,
        code::DEQUANTIZE,
        code::QCONV2D,
        code::QMATMUL,
    ] {
        assert!(ops.contains(&op), "the int8 base has no op {op}");
    }
    assert_eq!(load_and_run(base, "int8 base"), Ok(()));
    let mut failures = vec![];
    let mut accepted = 0;
    let n = iterations(3000);
    for seed in 0..n {
        let (b, what) = mutate_step(base, seed ^ 0x1e8);
        match catch_unwind(AssertUnwindSafe(|| load_and_run(&b, &what))) {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(_)) => {}
            Err(_) => failures.push(format!("seed {seed}: {what}")),
        }
    }
    println!("{n} int8 step mutations, {accepted} accepted");
    assert!(
        failures.is_empty(),
        "{} mutations panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn int8_scratch_must_be_private_arena_memory() {
    let base = int8_model();
    let f0 = File::new(base);
    let i = (0..f0.n_steps())
        .find(|&i| f0.step(i).op == code::QCONV2D && f0.step(i).inputs[3] != NO_TENSOR)
        .expect("a QConv2d with scratch");
    let st = f0.step(i);
    // Scratch named as the step's own input: overlaps another operand.
    let mut f = f0.clone();
    let at = f.range(section::STEPS).start + i * STEP_RECORD_LEN + 4 + 12;
    put_u32(&mut f.b, at, st.inputs[0]);
    fix_checksum(&mut f.b);
    assert_err!(
        f.b,
        Error::BadStep {
            reason: "scratch overlaps another operand in the arena",
            ..
        } | Error::BadStep {
            reason: "an input overlaps the output in the arena",
            ..
        }
    );
    // Scratch named as a constant (the weights).
    let mut f = f0.clone();
    put_u32(&mut f.b, at, st.inputs[1]);
    fix_checksum(&mut f.b);
    assert_err!(
        f.b,
        Error::BadStep {
            reason: "scratch must live in the arena",
            ..
        }
    );
}
