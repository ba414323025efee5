//! aarch64 kernels: Advanced SIMD (`neon_*`). NEON is part of the aarch64 base architecture,
//! so no run-time check is needed; the functions still carry `#[target_feature(enable =
//! "neon")]`, which Rust requires for calling the intrinsics safely, and are reached only
//! through [`crate::kernels`] with an [`crate::Isa`] of kind [`crate::IsaKind::Neon`].

pub(crate) mod elementwise;
pub(crate) mod fp16;
pub(crate) mod gemm;
pub mod math;
pub(crate) mod qdwconv;
pub(crate) mod qgemm;
pub(crate) mod quant;
