//! Instruction-set selection: which kernel set runs, chosen once when a session is created.
//!
//! An [`Isa`] can only be obtained for a kernel set the running CPU supports ([`Isa::new`]
//! checks), so the dispatching functions may call `#[target_feature]` kernels for it soundly.
//! On x86-64 the features are read at run time with CPUID/XGETBV (no `std` needed); NEON is
//! part of every aarch64 CPU. Reading `MOTE_FORCE_ISA` needs `std`.

/// The kernel sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IsaKind {
    /// The portable scalar reference (always available).
    Generic,
    /// x86-64 with AVX2, FMA and F16C (`x86-64-v3`).
    Avx2,
    /// x86-64 with AVX-512F (plus AVX2 and FMA) (`x86-64-v4`).
    Avx512,
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    Neon,
}

impl IsaKind {
    /// Every kind, best last.
    pub const ALL: [IsaKind; 4] = [
        IsaKind::Generic,
        IsaKind::Neon,
        IsaKind::Avx2,
        IsaKind::Avx512,
    ];

    /// The name used by `MOTE_FORCE_ISA` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            IsaKind::Generic => "generic",
            IsaKind::Avx2 => "avx2",
            IsaKind::Avx512 => "avx512",
            IsaKind::Neon => "neon",
        }
    }

    /// The kind called `name` (see [`IsaKind::name`]).
    pub fn from_name(name: &str) -> Option<IsaKind> {
        IsaKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the running CPU supports this kernel set.
    pub fn available(self) -> bool {
        match self {
            IsaKind::Generic => true,
            IsaKind::Avx2 => x86_has_avx2(),
            IsaKind::Avx512 => x86_has_avx2() && x86_has_avx512(),
            IsaKind::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
        }
    }
}

/// `(avx2, avx512f, avx512vnni)`, read once: CPUID traps to the hypervisor in a virtual
/// machine (microseconds), and the int8 kernels ask for every GEMM call. Bit 7 marks the cache
/// filled; concurrent first calls compute the same value, so a plain load/store suffices.
#[cfg(target_arch = "x86_64")]
fn x86_cached() -> (bool, bool, bool) {
    use core::sync::atomic::{AtomicU8, Ordering};
    static CACHE: AtomicU8 = AtomicU8::new(0);
    let mut bits = CACHE.load(Ordering::Relaxed);
    if bits == 0 {
        let (avx2, avx512f) = x86_cpuid_features();
        // Leaf 7 exists whenever AVX-512F was reported.
        let vnni = avx512f && core::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 11) != 0;
        bits = 0x80 | avx2 as u8 | (avx512f as u8) << 1 | (vnni as u8) << 2;
        CACHE.store(bits, Ordering::Relaxed);
    }
    (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0)
}

#[cfg(target_arch = "x86_64")]
fn x86_features() -> (bool, bool) {
    let (avx2, avx512f, _) = x86_cached();
    (avx2, avx512f)
}

/// CPUID and XCR0 bits: the CPU has the instructions and the OS saves the registers.
#[cfg(target_arch = "x86_64")]
fn x86_cpuid_features() -> (bool, bool) {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    let (max_leaf, l1) = (__cpuid(0).eax, __cpuid(1));
    let osxsave = l1.ecx & (1 << 27) != 0;
    let avx = l1.ecx & (1 << 28) != 0;
    let fma = l1.ecx & (1 << 12) != 0;
    // F16C (fp16 weight conversion) is part of x86-64-v3 and present on every AVX2 CPU; the
    // AVX2 set requires it so that its fp16 weight path needs no further check.
    let f16c = l1.ecx & (1 << 29) != 0;
    if !(osxsave && avx) || max_leaf < 7 {
        return (false, false);
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available and XCR0 readable.
    let xcr0 = unsafe { _xgetbv(0) };
    let l7 = __cpuid_count(7, 0);
    let ymm_saved = xcr0 & 0x6 == 0x6;
    let zmm_saved = xcr0 & 0xe6 == 0xe6;
    let avx2 = ymm_saved && fma && f16c && l7.ebx & (1 << 5) != 0;
    let avx512f = zmm_saved && l7.ebx & (1 << 16) != 0;
    (avx2, avx512f)
}

/// Whether the CPU has AVX-512 VNNI (`vpdpbusd` on zmm), with AVX-512F and the OS saving zmm.
#[cfg(target_arch = "x86_64")]
pub(crate) fn x86_has_avx512vnni() -> bool {
    x86_cached().2
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx2() -> bool {
    x86_features().0
}
#[cfg(target_arch = "x86_64")]
fn x86_has_avx512() -> bool {
    x86_features().1
}
#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx2() -> bool {
    false
}
#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512() -> bool {
    false
}

/// A kernel set the running CPU supports. The only ways to get one check support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Isa(IsaKind);

impl Isa {
    /// The scalar reference, available everywhere.
    pub const GENERIC: Isa = Isa(IsaKind::Generic);

    /// `kind`, if this CPU supports it.
    pub fn new(kind: IsaKind) -> Option<Isa> {
        kind.available().then_some(Isa(kind))
    }

    /// The fastest kernel set this CPU supports.
    pub fn best() -> Isa {
        IsaKind::ALL
            .into_iter()
            .rev()
            .find_map(Isa::new)
            .unwrap_or(Isa::GENERIC)
    }

    /// The kernel set asked for by `MOTE_FORCE_ISA`, or [`Isa::best`] when it is unset.
    /// An unknown name or one this CPU lacks is an error naming it.
    #[cfg(feature = "std")]
    pub fn from_env() -> Result<Isa, IsaError> {
        match std::env::var("MOTE_FORCE_ISA") {
            Ok(name) if !name.is_empty() => Isa::by_name(&name),
            _ => Ok(Isa::best()),
        }
    }

    /// The kernel set called `name`, if known and supported.
    pub fn by_name(name: &str) -> Result<Isa, IsaError> {
        let kind = IsaKind::from_name(name).ok_or(IsaError::Unknown)?;
        Isa::new(kind).ok_or(IsaError::Unsupported(kind))
    }

    /// Which kernel set.
    pub fn kind(self) -> IsaKind {
        self.0
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

/// Why a kernel set cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// The name is none of `generic`, `avx2`, `avx512`, `neon`.
    Unknown,
    /// This CPU (or, without `std`, this build) lacks the instructions.
    Unsupported(IsaKind),
}

impl core::fmt::Display for IsaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IsaError::Unknown => {
                write!(f, "unknown kernel set (use generic, avx2, avx512 or neon)")
            }
            IsaError::Unsupported(k) => write!(f, "this CPU lacks the {} instructions", k.name()),
        }
    }
}
