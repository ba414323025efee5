//! The `std` convenience layer: memory-mapped files, aligned owned buffers, owned arenas.

use crate::error::{Error, Result};
use crate::exec::Session;
use crate::model::Model;
use std::path::Path;

/// Bytes with 16-byte alignment (what [`Model::from_bytes`] needs), for models read into
/// memory instead of mapped.
#[derive(Debug, Clone)]
pub struct AlignedBytes {
    words: Vec<u128>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `data` into a fresh 16-byte aligned buffer.
    pub fn copy_from(data: &[u8]) -> Self {
        let mut words = vec![0u128; data.len().div_ceil(16)];
        crate::view::bytes_of_mut(&mut words)[..data.len()].copy_from_slice(data);
        AlignedBytes {
            words,
            len: data.len(),
        }
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        crate::view::bytes_of(&self.words)
            .get(..self.len)
            .unwrap_or(&[])
    }
}

/// A `.mote` file memory-mapped read-only. [`MappedModel::model`] validates on each call;
/// keep the returned [`Model`] rather than calling it per inference.
#[derive(Debug)]
pub struct MappedModel {
    map: memmap2::Mmap,
}

impl MappedModel {
    /// Maps `path`. The file must not be modified while mapped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|_| Error::Io {
            what: "cannot open the model file",
        })?;
        // SAFETY: the map is read-only and private to this process; mote never writes through
        // it. Another process truncating or rewriting the file while it is mapped is outside
        // what any mmap user can defend against, and is documented on `open`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|_| Error::Io {
            what: "cannot map the model file",
        })?;
        Ok(MappedModel { map })
    }
    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
    /// Validates and borrows the model.
    pub fn model(&self) -> Result<Model<'_>> {
        Model::from_bytes(&self.map)
    }
}

/// A session that owns its arena (allocated once, here).
#[derive(Debug)]
pub struct OwnedSession<'m> {
    model: &'m Model<'m>,
    arena: Vec<u8>,
    pool: Option<crate::pool::ThreadPool>,
}

impl<'m> OwnedSession<'m> {
    /// Allocates `model.arena_size_min()` bytes once.
    pub fn new(model: &'m Model<'m>) -> Result<Self> {
        Self::with_threads(model, 1)
    }
    /// [`OwnedSession::new`] with a pool of `threads` threads (the caller included) that its
    /// sessions split large steps over; 1 starts no thread.
    pub fn with_threads(model: &'m Model<'m>, threads: usize) -> Result<Self> {
        let arena = vec![0u8; model.arena_size_min()];
        let pool = if threads > 1 {
            Some(
                crate::pool::ThreadPool::new(threads).map_err(|_| Error::Io {
                    what: "cannot start a worker thread",
                })?,
            )
        } else {
            None
        };
        // Check up front that the arena is usable.
        let mut s = OwnedSession { model, arena, pool };
        s.session()?;
        Ok(s)
    }
    /// A session over the owned arena. Inputs written through one session are seen by the next
    /// (the arena is not cleared).
    pub fn session(&mut self) -> Result<Session<'m, '_>> {
        let s = Session::new(self.model, &mut self.arena)?;
        Ok(match &self.pool {
            Some(p) => s.with_pool(p),
            None => s,
        })
    }
    /// [`OwnedSession::session`] on an explicit kernel set.
    pub fn session_with_isa(&mut self, isa: mote_targets::Isa) -> Result<Session<'m, '_>> {
        let s = Session::with_isa(self.model, &mut self.arena, isa)?;
        Ok(match &self.pool {
            Some(p) => s.with_pool(p),
            None => s,
        })
    }
}

impl Model<'_> {
    /// Memory-maps a `.mote` file (same as [`MappedModel::open`]); call
    /// [`MappedModel::model`] on the result to validate it and borrow the [`Model`].
    pub fn open(path: impl AsRef<Path>) -> Result<MappedModel> {
        MappedModel::open(path)
    }
}
