//! Minimal Cortex-M7 firmware: the demo model embedded in flash, run once on a static arena by
//! the scalar kernels, the output compared with onnxruntime's, the verdict printed over
//! semihosting. Exit status 0 when every output element is within tolerance.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use cortex_m_rt::entry;
use mote::{Model, Session};

include!(concat!(env!("OUT_DIR"), "/arena.rs"));

/// Bytes embedded at the alignment the engine requires (16 for the model, 4 for f32 data).
#[repr(C)]
struct Aligned<A, B: ?Sized> {
    _align: [A; 0],
    bytes: B,
}
#[repr(align(16))]
struct A16;

static MODEL: &Aligned<A16, [u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/model.mote")),
};
static INPUT: &Aligned<A16, [u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/input.f32")),
};
static WANT: &Aligned<A16, [u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/output.f32")),
};

/// The arena, in .bss (RAM), 64-byte aligned.
#[repr(C, align(64))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);
// SAFETY: only `main` touches the arena, once; there are no interrupts or other threads.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

/// ARM semihosting call (`bkpt 0xAB`), served by QEMU or a debug probe.
fn semihost(op: u32, arg: usize) -> u32 {
    let r;
    // SAFETY: the semihosting trap reads `arg` as the operation defines; the strings and codes
    // passed below are valid for it.
    unsafe {
        core::arch::asm!("bkpt 0xAB", inout("r0") op => r, in("r1") arg, options(nostack));
    }
    r
}

/// Prints NUL-free `parts` (SYS_WRITE0 wants a NUL-terminated string; copy into a buffer).
fn print(parts: &[&[u8]]) {
    let mut buf = [0u8; 128];
    let mut n = 0;
    for p in parts {
        for &c in *p {
            if n + 1 < buf.len() {
                buf[n] = c;
                n += 1;
            }
        }
    }
    buf[n] = 0;
    semihost(0x04, buf.as_ptr() as usize);
}

/// Decimal digits of `v` into `buf`, returning the used tail.
fn dec(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn exit(ok: bool) -> ! {
    // SYS_EXIT with ADP_Stopped_ApplicationExit (QEMU exits 0) or RunTimeErrorUnknown (1).
    semihost(0x18, if ok { 0x20026 } else { 0x20023 });
    loop {
        // Without a debugger attached SYS_EXIT returns: sleep until reset.
        // SAFETY: `wfi` only waits for an interrupt.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    print(&[b"mote firmware: panic\n"]);
    exit(false)
}

fn fail(what: &[u8]) -> ! {
    print_fail(&[what])
}

fn print_fail(what: &[&[u8]]) -> ! {
    print(&[b"mote firmware: FAIL: "]);
    print(what);
    print(&[b"\n"]);
    exit(false)
}

fn f32s(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

#[entry]
fn main() -> ! {
    let model = match Model::from_bytes(&MODEL.bytes) {
        Ok(m) => m,
        Err(mote::Error::OpNotBuilt { op, feature, .. }) => print_fail(&[
            b"op ",
            op.as_bytes(),
            b" is not built in (feature ",
            feature.as_bytes(),
            b")",
        ]),
        Err(_) => fail(b"Model::from_bytes"),
    };
    // SAFETY: the one and only borrow of the arena (see `Arena`).
    let arena = unsafe { &mut *ARENA.0.get() };
    let mut session = match Session::new(&model, arena) {
        Ok(s) => s,
        Err(_) => fail(b"Session::new"),
    };
    let input = match session.input_mut::<f32>(0) {
        Ok(x) if x.len() * 4 == INPUT.bytes.len() => x,
        _ => fail(b"input 0 is not the demo's f32 input"),
    };
    for (d, v) in input.iter_mut().zip(f32s(&INPUT.bytes)) {
        *d = v;
    }
    if session.run().is_err() {
        fail(b"Session::run");
    }
    let got = match session.output::<f32>(0) {
        Ok(y) if y.len() * 4 == WANT.bytes.len() => y,
        _ => fail(b"output 0 is not the demo's f32 output"),
    };
    // Tolerance of the host conformance test for the demo (scalar f32 vs onnxruntime).
    let (mut worst, mut scale) = (0f32, 0f32);
    for (g, w) in got.iter().zip(f32s(&WANT.bytes)) {
        let e = (g - w).abs();
        if e.is_nan() || e > worst {
            worst = e; // NaN sticks: it compares false with everything after
        }
        scale = scale.max(w.abs());
    }
    let ok = !worst.is_nan() && worst <= 1e-4 * scale.max(1.0);
    let (mut b1, mut b2, mut b3) = ([0; 20], [0; 20], [0; 20]);
    print(&[
        b"mote firmware: ",
        dec(got.len() as u64, &mut b1),
        b" outputs, max |err| = ",
        dec((worst * 1e9) as u64, &mut b2),
        b"e-9, max |ref| = ",
        dec((scale * 1e3) as u64, &mut b3),
        b"e-3: ",
        if ok { b"PASS\n" } else { b"FAIL\n" },
    ]);
    exit(ok)
}
