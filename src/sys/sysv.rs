//! System V IPC objects behind small owning types (no maintained crate wraps them).
//! Objects are private (`IPC_PRIVATE`), mode 0600, passed to the peer by id, checked by the
//! peer before use, and removed with `IPC_RMID` exactly once by their creator.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A System V message queue. The creator removes it on drop (or earlier, via `remove`).
#[derive(Debug)]
pub struct MsgQueue {
    id: libc::c_int,
    owned: bool,
    removed: AtomicBool,
}

/// A message in the layout `msgsnd`/`msgrcv` want: a `long` type followed by the payload.
pub struct MsgBuf {
    words: Vec<libc::c_long>,
    len: usize,
}

impl MsgBuf {
    pub fn new(len: usize) -> MsgBuf {
        let word = std::mem::size_of::<libc::c_long>();
        let mut words = vec![0; 1 + len.div_ceil(word)];
        words[0] = 1; // every message has type 1 (msgsnd requires > 0)
        MsgBuf { words, len }
    }

    pub fn payload(&self) -> &[u8] {
        // SAFETY: `words` holds one type word plus at least `len` bytes after it, so the
        // range is inside the allocation; u8 has no alignment or validity requirements.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().add(1).cast::<u8>(), self.len) }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `payload`, and the slice borrows `self` mutably.
        unsafe {
            std::slice::from_raw_parts_mut(self.words.as_mut_ptr().add(1).cast::<u8>(), self.len)
        }
    }
}

impl MsgQueue {
    /// Creates a private queue with mode 0600.
    pub fn create() -> io::Result<MsgQueue> {
        // SAFETY: msgget takes only integer arguments.
        let id = check(unsafe {
            libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
        })?;
        crate::sys::record::track(&crate::sys::record::Object::SysvMsg(id));
        Ok(MsgQueue {
            id,
            owned: true,
            removed: AtomicBool::new(false),
        })
    }

    /// Opens a queue the parent created for us: it must exist, belong to this user and
    /// have mode 0600. The peer never removes it.
    pub fn open(id: libc::c_int) -> Result<MsgQueue, String> {
        let q = MsgQueue {
            id,
            owned: false,
            removed: AtomicBool::new(false),
        };
        let ds = q.stat().map_err(|e| format!("System V queue {id}: {e}"))?;
        let me = nix::unistd::geteuid().as_raw();
        if ds.msg_perm.uid != me || ds.msg_perm.cuid != me || ds.msg_perm.mode & 0o777 != 0o600 {
            return Err(format!(
                "System V queue {id} is not a private queue of this user"
            ));
        }
        Ok(q)
    }

    pub fn id(&self) -> libc::c_int {
        self.id
    }

    pub fn stat(&self) -> io::Result<libc::msqid_ds> {
        // SAFETY: msqid_ds is plain old data; IPC_STAT fills it completely on success.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid, writable msqid_ds for the duration of the call.
        check(unsafe { libc::msgctl(self.id, libc::IPC_STAT, &mut ds) })?;
        Ok(ds)
    }

    /// Sends the whole payload of `buf`; blocks while the queue is full.
    pub fn send(&self, buf: &MsgBuf) -> io::Result<()> {
        loop {
            // SAFETY: `buf.words` is a type word followed by `buf.len` payload bytes.
            // (A direct system call: libc's msgsnd is a cancellation point, which costs
            // every call in a multi-threaded process.)
            let r = unsafe {
                libc::syscall(
                    libc::SYS_msgsnd,
                    self.id,
                    buf.words.as_ptr(),
                    buf.len,
                    0 as libc::c_int,
                )
            } as libc::c_int;
            match check(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(drop),
            }
        }
    }

    /// Receives one message into `buf` and returns its payload length. A message longer
    /// than the buffer fails with E2BIG (it is not truncated).
    pub fn recv(&self, buf: &mut MsgBuf) -> io::Result<usize> {
        loop {
            // SAFETY: `buf.words` has room for a type word and `buf.len` payload bytes.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_msgrcv,
                    self.id,
                    buf.words.as_mut_ptr(),
                    buf.len,
                    0 as libc::c_long,
                    0 as libc::c_int,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Removes the queue (once); blocked senders and receivers return `EIDRM`.
    pub fn remove(&self) -> io::Result<()> {
        if !self.owned || self.removed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: IPC_RMID takes no buffer.
        check(unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        crate::sys::record::untrack(&crate::sys::record::Object::SysvMsg(self.id));
        Ok(())
    }
}

impl Drop for MsgQueue {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_carries_a_message_and_is_gone_after_drop() {
        let q = MsgQueue::create().unwrap();
        let id = q.id();
        let peer = MsgQueue::open(id).unwrap();
        let mut out = MsgBuf::new(100);
        out.payload_mut().copy_from_slice(&[7u8; 100]);
        q.send(&out).unwrap();
        let mut small = MsgBuf::new(10);
        assert_eq!(
            peer.recv(&mut small).unwrap_err().raw_os_error(),
            Some(libc::E2BIG)
        );
        let mut inb = MsgBuf::new(100);
        assert_eq!(peer.recv(&mut inb).unwrap(), 100);
        assert_eq!(inb.payload(), &[7u8; 100]);
        drop(peer);
        assert!(MsgQueue::open(id).is_ok(), "only the creator removes");
        drop(q);
        assert!(MsgQueue::open(id).is_err());
    }
}

/// Which kind of System V object an id names.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Queue,
    SemSet,
    Segment,
}

/// Removes a System V object by id (for `ipcbench clean`, which holds no handle to it).
pub fn remove_by_id(kind: Kind, id: libc::c_int) -> io::Result<()> {
    let r = match kind {
        // SAFETY: IPC_RMID takes no buffer; a stale or foreign id only makes the call fail.
        Kind::Queue => unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) },
        // SAFETY: as above; semctl's fourth argument is unused for IPC_RMID.
        Kind::SemSet => unsafe { libc::semctl(id, 0, libc::IPC_RMID) },
        // SAFETY: as above.
        Kind::Segment => unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) },
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A System V object's change time, which a reused id would not share; `None` if the id
/// names no object (or one this user may not inspect).
pub fn ctime(kind: Kind, id: libc::c_int) -> Option<i64> {
    match kind {
        Kind::Queue => {
            // SAFETY: msqid_ds is plain old data that IPC_STAT fills through a valid pointer.
            let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is a live msqid_ds for the call's duration.
            (unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds.msg_ctime)
        }
        Kind::SemSet => {
            // SAFETY: semid_ds is plain old data that IPC_STAT fills through a valid pointer.
            let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is a live semid_ds for the call's duration.
            (unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } == 0)
                .then_some(ds.sem_ctime)
        }
        Kind::Segment => {
            // SAFETY: shmid_ds is plain old data that IPC_STAT fills through a valid pointer.
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is a live shmid_ds for the call's duration.
            (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some(ds.shm_ctime)
        }
    }
}
