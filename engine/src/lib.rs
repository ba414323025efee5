//! mote runtime: opens `.mote` files in place and runs them on a caller-provided arena.
//!
//! The core is `#![no_std]` without `alloc`: [`Model::from_bytes`] validates a byte buffer (an
//! mmap, flash, or any 16-byte aligned slice) and borrows the weights straight out of it;
//! [`Session`] executes the step list on an arena of [`Model::arena_size_min`] bytes and never
//! allocates. The `std` feature adds [`MappedModel::open`] and the other helpers in [`std_io`]: memory-mapping
//! a file and owning an arena.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod error;
pub mod exec;
pub mod format;
pub mod model;
pub mod ops;
#[cfg(feature = "std")]
mod par;
#[cfg(feature = "std")]
pub mod pool;
#[cfg(feature = "op-int8")]
mod qexec;
#[cfg(feature = "std")]
pub mod std_io;
pub mod view;

pub use error::{Error, Result};
pub use exec::Session;
pub use format::DType;
pub use model::{Model, Step, TensorInfo};
#[cfg(feature = "std")]
pub use pool::ThreadPool;
#[cfg(feature = "std")]
pub use std_io::{AlignedBytes, MappedModel, OwnedSession};
