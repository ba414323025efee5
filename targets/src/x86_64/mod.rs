//! x86-64 kernels: AVX2 + FMA (`avx2_*`) and AVX-512F (`avx512_*`). Each is called only through
//! [`crate::kernels`] with an [`crate::Isa`] that proves the CPU has the instructions.

pub(crate) mod dwconv;
pub(crate) mod elementwise;
pub(crate) mod fp16;
pub(crate) mod gemm;
pub mod math;
pub(crate) mod norm;
pub(crate) mod qdwconv;
pub(crate) mod qgemm;
pub(crate) mod quant;
