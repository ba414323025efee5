//! int8 GEMM micro-kernels (see [`crate::qgemm`]).
