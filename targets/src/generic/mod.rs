//! Portable scalar reference kernels (f32 unless stated). Always compiled; the oracle for every
//! ISA kernel. Tensors are row-major and contiguous unless a kernel takes explicit strides.

pub mod activation;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod gather;
pub mod gemm;
pub mod math;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod reduce;

mod strided;
