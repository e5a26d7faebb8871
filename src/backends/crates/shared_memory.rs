//! `shared-memory` (cargo feature `shared-memory-crate`): the shared_memory crate (0.12)
//! creates and maps the segment; the rings and the wake-up are the harness's own
//! (`shm-futex`), because raw_sync's events are a condvar without the wake-only-when-waiting
//! protocol and would measure a different strategy. So this shows what the crate's segment
//! handling costs over `shm-futex`, which it is reported against.

use std::os::fd::OwnedFd;

use shared_memory::{Shmem, ShmemConf};

use super::super::shm::{segment_bytes, spec_segment, Names, SHM_FUTEX};
use super::super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
use crate::sys::fs::PREFIX;
use crate::sys::shm::Mapping;

pub struct SharedMemoryCrate;

static INFO: MechanismInfo = MechanismInfo {
    id: "shared-memory",
    family: Family::Crates,
    summary: "shared_memory 0.12 segment (shm_open under the hood) with the harness's rings and futex wake-up",
    boundaries: true,
    kernel_copies: 0,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: Some("shm-futex"),
    fan_in: false,
    fd_passing: false,
    portable: true,
    trade_off: "crate-managed segment with the harness's futex rings; the crate is unmaintained",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// The crate's handle, kept only to unmap on drop.
struct Held(#[allow(dead_code)] Shmem);

// SAFETY: the handle is never used after construction except to be dropped (which unmaps);
// all access to the memory goes through the harness's ring protocol.
unsafe impl Send for Held {}
// SAFETY: as above: no method of the handle is called through a shared reference.
unsafe impl Sync for Held {}

fn err(action: &'static str, what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::new(
        INFO.id,
        action,
        what.to_string(),
        std::io::Error::other(e.to_string()),
    )
}

fn mapping(mut shm: Shmem) -> Result<Mapping, BackendError> {
    // Unlinking is ours (as soon as both sides hold it), not the crate's drop.
    shm.set_owner(false);
    let (ptr, len) = (shm.as_ptr(), shm.len());
    // SAFETY: the crate mapped `len` bytes read-write and shared at `ptr`; they stay mapped
    // until the handle, now owned by the mapping, is dropped.
    unsafe { Mapping::foreign(ptr, len, Box::new(Held(shm))) }
        .map_err(|e| err("map", "the segment", e))
}

impl Mechanism for SharedMemoryCrate {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    /// The same ring as `shm-*`.
    fn copies(&self, params: &ChannelParams) -> u8 {
        crate::backends::shm::ring_copies(params.shm_read)
    }

    fn unsupported(
        &self,
        params: &ChannelParams,
        limits: &crate::environment::Limits,
    ) -> Option<String> {
        SHM_FUTEX.unsupported(params, limits)
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let tag = crate::sys::random_u64().map_err(|e| err("read", "/dev/urandom", e))?;
        let name = format!("/{PREFIX}{}-{tag:016x}-crate", std::process::id());
        let shm = ShmemConf::new()
            .os_id(&name)
            .size(segment_bytes(params.shm_ring, params.size))
            .create()
            .map_err(|e| err("create", &name, e))?;
        crate::sys::record::track(&crate::sys::record::Object::PosixShm(name.clone()));
        let map = mapping(shm)?;
        SHM_FUTEX.offer_over(
            map,
            format!("crate:{name}"),
            Some(Names::Posix(name)),
            None,
            Vec::new(),
            params,
        )
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let (segment, len) = spec_segment(spec, params.size)
            .ok_or_else(|| BackendError::invalid(INFO.id, spec, "malformed description"))?;
        let name = segment
            .strip_prefix("crate:/")
            .filter(|n| {
                n.starts_with(PREFIX) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or_else(|| {
                BackendError::invalid(INFO.id, spec, "not a segment this tool creates")
            })?;
        let shm = ShmemConf::new()
            .os_id(format!("/{name}"))
            .open()
            .map_err(|e| err("open", name, e))?;
        if shm.len() < len {
            return Err(BackendError::invalid(
                INFO.id,
                name,
                "the segment is smaller than described",
            ));
        }
        SHM_FUTEX.join_over(mapping(shm)?, spec, inherited, params)
    }
}
