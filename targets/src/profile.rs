//! Board profiles: which ISA features, weight precisions and packed layouts a target gets.
//!
//! Version 1 of the `.mote` format knows one packed layout, [`LAYOUT_REFERENCE`]: plain
//! row-major weights in ONNX order, read by the scalar reference kernels. ISA-specific layouts
//! are appended later; a file records the layout it was packed for.

/// Row-major ONNX-order weights, readable by every kernel set.
pub const LAYOUT_REFERENCE: u32 = 0;

/// A conversion target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Name used on the command line (`--target`).
    pub name: &'static str,
    /// Human description.
    pub description: &'static str,
    /// Packed-layout id written into the file.
    pub layout: u32,
}

/// Every known profile. All use the reference layout until packed kernels land.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "generic",
        description: "any CPU, scalar reference kernels",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "x86-64-v3",
        description: "x86-64 with AVX2 + FMA",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "x86-64-v4",
        description: "x86-64 with AVX-512",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "rpi3",
        description: "Raspberry Pi 3, Cortex-A53, NEON",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "rpi4",
        description: "Raspberry Pi 4, Cortex-A72, NEON",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "rpi5",
        description: "Raspberry Pi 5, Cortex-A76, NEON + fp16 + dotprod",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "jetson-nano",
        description: "Jetson Nano, Cortex-A57, NEON",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "jetson-orin",
        description: "Jetson Orin, Cortex-A78AE, NEON + fp16 + dotprod",
        layout: LAYOUT_REFERENCE,
    },
    Profile {
        name: "cortex-m7",
        description: "Cortex-M7 firmware, scalar",
        layout: LAYOUT_REFERENCE,
    },
];

/// Looks a profile up by name.
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// Whether kernels of this build can read weights packed in `layout`.
pub fn layout_supported(layout: u32) -> bool {
    layout == LAYOUT_REFERENCE
}
