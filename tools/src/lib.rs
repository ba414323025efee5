//! mote host tools: the ONNX converter, `.npy` I/O, and the pieces of the `mote` CLI.

pub mod compare;
pub mod convert;
pub mod npy;
