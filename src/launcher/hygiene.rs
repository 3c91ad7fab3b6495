//! The launcher's memory hygiene (DESIGN §6): taken before any secret is fetched.
//!
//! - non-dumpable and a core size limit of 0: no core file, and other users' debuggers and
//!   `/proc/<pid>/mem` readers are refused;
//! - memory locked against swap where the process may lock it;
//! - freed heap memory wiped ([`super::alloc`]);
//! - the API key taken out of the launcher's own environment block, the bytes overwritten in
//!   place, so `/proc/<launcher>/environ` no longer shows it.

use nix::libc;
use zeroize::Zeroizing;

/// What [`harden`] managed to do, for a debug log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one flag per independent measure
pub struct Hardened {
    /// `PR_SET_DUMPABLE` is 0.
    pub non_dumpable: bool,
    /// `RLIMIT_CORE` is 0.
    pub no_core: bool,
    /// Current memory is locked.
    pub locked: bool,
    /// Future mappings are locked too.
    pub locked_future: bool,
}

/// `MCL_ONFAULT` (Linux 4.4): lock pages as they are touched rather than all at once, so
/// reserved but unused thread stacks and heap do not count against the limit.
const MCL_ONFAULT: libc::c_int = 4;

/// Marks the process non-dumpable, sets its core limit to 0, locks its memory where allowed and
/// switches on wiping of freed memory. Call once, first thing, before any secret is read.
#[must_use]
pub fn harden() -> Hardened {
    super::alloc::enable();
    let non_dumpable = nix::sys::prctl::set_dumpable(false).is_ok();
    let no_core =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0).is_ok();
    // Locking future mappings fails later allocations once RLIMIT_MEMLOCK is reached, so it is
    // only asked for when no limit applies (root, or an unlimited limit).
    let unlimited = nix::unistd::geteuid().is_root()
        || nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
            .is_ok_and(|(soft, _)| soft == libc::RLIM_INFINITY);
    let (locked, locked_future) = if unlimited {
        // SAFETY: mlockall takes flags only.
        let ok = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | MCL_ONFAULT) } == 0;
        (ok, ok)
    } else {
        // SAFETY: as above.
        (
            unsafe { libc::mlockall(libc::MCL_CURRENT | MCL_ONFAULT) } == 0,
            false,
        )
    };
    Hardened {
        non_dumpable,
        no_core,
        locked,
        locked_future,
    }
}

/// Takes variable `name` out of the process environment: returns its value in a zeroizing
/// buffer, overwrites the value's bytes in the environment block, then unsets it.
///
/// # Safety
/// No other thread may read or write the environment while this runs (call it before any
/// thread starts).
#[must_use]
pub unsafe fn take_env_var(name: &str) -> Option<Zeroizing<String>> {
    let prefix = format!("{name}=");
    let mut found = None;
    // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings; the caller
    // guarantees no concurrent access. The bytes are writable (the initial environment lives
    // on the stack, later entries on the heap).
    unsafe {
        let mut entry = libc::environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(value) = text.strip_prefix(prefix.as_bytes()) {
                if found.is_none() {
                    found = Some(Zeroizing::new(String::from_utf8_lossy(value).into_owned()));
                }
                let start = (*entry).add(prefix.len());
                for i in 0..value.len() {
                    std::ptr::write_volatile(start.add(i), 0);
                }
            }
            entry = entry.add(1);
        }
        std::env::remove_var(name);
    }
    found
}

/// Overwrites a stretch of the calling thread's stack below this frame, where earlier calls
/// (HTTP parsing, JSON decoding) may have left fragments of a response.
#[inline(never)]
#[allow(clippy::large_stack_arrays)] // the point is to cover that much stack
pub fn wipe_stack() {
    let mut area = [0u8; 64 * 1024];
    zeroize::Zeroize::zeroize(&mut area[..]);
    std::hint::black_box(&mut area);
}
