//! Moving large messages with fewer copies: `vmsplice` into a pipe, cross-memory attach
//! (`process_vm_readv`/`process_vm_writev`), and sealed memfds with read-only mappings.

use std::io::{self, IoSlice, IoSliceMut};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::MFdFlags;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

/// The page size every buffer here is aligned to.
pub const PAGE: usize = 4096;

/// A buffer of `len` bytes at a page boundary inside an owned vector (no allocator
/// alignment needed: the vector is one page longer and the buffer starts at the first
/// page boundary in it).
pub struct PageBuf {
    bytes: Vec<u8>,
    at: usize,
    len: usize,
}

impl PageBuf {
    pub fn new(len: usize) -> PageBuf {
        let bytes = vec![0u8; len + PAGE];
        let at = bytes.as_ptr().align_offset(PAGE).min(PAGE);
        PageBuf { bytes, at, len }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[self.at..self.at + self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.at..self.at + self.len]
    }

    /// The buffer's address, for a peer that reads or writes it with cross-memory attach.
    pub fn addr(&self) -> usize {
        self.bytes().as_ptr().expose_provenance()
    }
}

/// Hands all of `buf` to the pipe `fd` by reference (`vmsplice`), blocking while the pipe
/// is full. With `gift`, the pages are offered to the kernel (`SPLICE_F_GIFT`): today's
/// kernels only mark them, and a reader's `read` copies them like any other.
///
/// The caller must leave `buf` unchanged until the reader has consumed every byte of it
/// (the pipe holds references to its pages, not a copy).
pub fn vmsplice_all(fd: impl AsFd, buf: &[u8], gift: bool) -> io::Result<()> {
    use rustix::pipe::{IoSliceRaw, SpliceFlags};
    let flags = match gift {
        true => SpliceFlags::GIFT,
        false => SpliceFlags::empty(),
    };
    let mut at = 0;
    while at < buf.len() {
        let iov = [IoSliceRaw::from_slice(&buf[at..])];
        // SAFETY: `fd` is a pipe's write end (the caller's contract), so the kernel only
        // reads these pages. It keeps references to them: the only caller (pipe-splice)
        // rewrites a buffer only after a full pipe's worth of later messages has been
        // accepted, so the reader has consumed these bytes by then; gifts are offered only
        // for whole, page-aligned pages.
        match unsafe { rustix::pipe::vmsplice(fd.as_fd(), &iov, flags) } {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => at += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The capacity of a pipe in bytes (`F_GETPIPE_SZ`).
pub fn pipe_capacity(fd: impl AsFd) -> io::Result<usize> {
    Ok(fcntl(fd.as_fd(), FcntlArg::F_GETPIPE_SZ)? as usize)
}

/// Copies `local.len()` bytes from address `remote` in process `pid` (`process_vm_readv`),
/// looping over partial transfers.
pub fn cma_read(pid: i32, local: &mut [u8], remote: usize) -> io::Result<()> {
    let mut at = 0;
    while at < local.len() {
        let len = local.len() - at;
        let mut iov = [IoSliceMut::new(&mut local[at..])];
        let r = [RemoteIoVec {
            base: remote + at,
            len,
        }];
        match process_vm_readv(Pid::from_raw(pid), &mut iov, &r) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => at += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies `local` to address `remote` in process `pid` (`process_vm_writev`).
pub fn cma_write(pid: i32, local: &[u8], remote: usize) -> io::Result<()> {
    let mut at = 0;
    while at < local.len() {
        let len = local.len() - at;
        let iov = [IoSlice::new(&local[at..])];
        let r = [RemoteIoVec {
            base: remote + at,
            len,
        }];
        match process_vm_writev(Pid::from_raw(pid), &iov, &r) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => at += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A memfd of `len` bytes that accepts seals, its size sealed at once (so a mapping of it
/// can never run past its end).
pub fn sealable_memfd(len: usize) -> io::Result<OwnedFd> {
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let fd = super::shm::sized_memfd(c"ipcbench-msg", flags, len)?;
    add_seals(&fd, SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW)?;
    Ok(fd)
}

pub fn add_seals(fd: impl AsFd, seals: SealFlag) -> io::Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(seals))?;
    Ok(())
}

/// Whether `fd` carries every seal in `want` (a receiver checks before it trusts a memfd).
pub fn has_seals(fd: impl AsFd, want: SealFlag) -> io::Result<bool> {
    let got = fcntl(fd.as_fd(), FcntlArg::F_GET_SEALS)?;
    Ok(SealFlag::from_bits_truncate(got).contains(want))
}

/// The size of the file behind `fd`.
pub fn file_len(fd: impl AsFd) -> io::Result<usize> {
    Ok(nix::sys::stat::fstat(fd.as_fd())?.st_size as usize)
}

/// A shared mapping of a whole memfd, unmapped on drop: read-write for the process that
/// writes messages into it, read-only for one that only checks them.
pub struct View {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value; it moves between threads with it.
unsafe impl Send for View {}

impl View {
    /// Maps `len` bytes of `fd` shared, writable when `write`.
    pub fn map(fd: impl AsFd, len: usize, write: bool) -> io::Result<View> {
        let n = NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty memfd"))?;
        let prot = match write {
            true => ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            false => ProtFlags::PROT_READ,
        };
        // A read-only view is made to be read at once, all of it: its page tables are
        // filled in one go rather than a fault per page.
        let flags = match write {
            true => MapFlags::MAP_SHARED,
            false => MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE,
        };
        // SAFETY: a fresh mapping chosen by the kernel overlaps no Rust object.
        let p = unsafe { mmap(None, n, prot, flags, fd, 0)? };
        Ok(View {
            ptr: p.cast(),
            len,
            writable: write,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is mapped for as long as `self` lives. Only this
        // process writes it (through `bytes_mut`, which needs `&mut self`); a receiving
        // process maps it read-only and looks only after the writer has handed it over.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The writable bytes of a view mapped with `write`; `None` for a read-only one.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        // SAFETY: as in `bytes`; the pages are mapped writable, and `&mut self` makes
        // this the only reference.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this address and length, and no
        // slice of it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Names `pid` as the one process that may attach to this one under Yama's ptrace scope 1
/// (`PR_SET_PTRACER`); 0 withdraws it. A kernel without Yama has nothing to set.
pub fn allow_ptracer(pid: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PTRACER takes one integer argument and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_PTRACER, pid as libc::c_ulong, 0, 0, 0) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}
