//! Board profiles: which ISA features, weight precisions and packed layouts a target gets.
//!
//! A file records the layout its weights were packed in. Layouts:
//!
//! - [`LAYOUT_REFERENCE`]: plain row-major weights in ONNX order.
//! - [`LAYOUT_PANEL6`]: the weights of every convolution that runs as a GEMM (all but
//!   depthwise) are stored as A panels of [`crate::gemm::MR`] = 6 rows
//!   ([`crate::kernels::ConvWeights::Panels`]), the order every SIMD micro-kernel reads
//!   (AVX2, AVX-512 and NEON share `MR`). The scalar reference reads it too, so a panel file
//!   runs on every CPU and under every `MOTE_FORCE_ISA`.
//!
//! Layout ids are append-only; a reader refuses ids it does not know.
//!
//! Weight precision is not a layout: a constant's dtype in the file says whether it holds f32
//! or binary16 values, in the same order either way ([`WeightPrecision`] is only the
//! converter's default for a profile).

/// Row-major ONNX-order weights, readable by every kernel set.
pub const LAYOUT_REFERENCE: u32 = 0;
/// GEMM convolution weights packed in panels of 6 rows.
pub const LAYOUT_PANEL6: u32 = 1;

/// The precision the converter gives the large weights (GEMM convolutions, MatMul / Gemm
/// constants) of a profile unless told otherwise (`mote convert --quant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrecision {
    /// IEEE binary32.
    F32,
    /// IEEE binary16, widened to f32 as tiles are loaded (boards whose memory bandwidth and
    /// size make half the weight bytes worth it; fp16 arithmetic comes later).
    F16,
}

/// A conversion target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Name used on the command line (`--target`).
    pub name: &'static str,
    /// Human description.
    pub description: &'static str,
    /// Packed-layout id written into the file.
    pub layout: u32,
    /// Default precision of the large weights.
    pub weights: WeightPrecision,
}

/// Every known profile.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "generic",
        description: "any CPU, scalar reference kernels",
        layout: LAYOUT_REFERENCE,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "x86-64-v3",
        description: "x86-64 with AVX2 + FMA",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "x86-64-v4",
        description: "x86-64 with AVX-512",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "rpi3",
        description: "Raspberry Pi 3, Cortex-A53, NEON",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "rpi4",
        description: "Raspberry Pi 4, Cortex-A72, NEON",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "rpi5",
        description: "Raspberry Pi 5, Cortex-A76, NEON + fp16 + dotprod",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F16,
    },
    Profile {
        name: "jetson-nano",
        description: "Jetson Nano, Cortex-A57, NEON",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F32,
    },
    Profile {
        name: "jetson-orin",
        description: "Jetson Orin, Cortex-A78AE, NEON + fp16 + dotprod",
        layout: LAYOUT_PANEL6,
        weights: WeightPrecision::F16,
    },
    Profile {
        name: "cortex-m7",
        description: "Cortex-M7 firmware, scalar",
        layout: LAYOUT_REFERENCE,
        weights: WeightPrecision::F32,
    },
];

/// Looks a profile up by name.
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// Whether kernels of this build can read weights packed in `layout`.
pub fn layout_supported(layout: u32) -> bool {
    layout == LAYOUT_REFERENCE || layout == LAYOUT_PANEL6
}

/// The profile for the machine this runs on: `x86-64-v4`, `x86-64-v3`, `rpi4` for any aarch64
/// (NEON, no optional extensions assumed), else `generic`.
pub fn host() -> &'static Profile {
    use crate::isa::IsaKind;
    let name = if IsaKind::Avx512.available() {
        "x86-64-v4"
    } else if IsaKind::Avx2.available() {
        "x86-64-v3"
    } else if IsaKind::Neon.available() {
        "rpi4"
    } else {
        "generic"
    };
    find(name).unwrap_or(&PROFILES[0])
}
