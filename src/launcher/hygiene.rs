//! The launcher's memory hygiene (DESIGN §6): taken before any secret is fetched.
//!
//! - non-dumpable and a core size limit of 0: no core file, and other users' debuggers and
//!   `/proc/<pid>/mem` readers are refused;
//! - the memory that can hold a secret locked against swap where the process may lock it:
//!   every writable mapping not backed by a file (heap, allocator arenas, stacks), and every
//!   mapping made later. The program's code and read-only data are not locked: they are read
//!   from the binary, hold no secret, and locking them cost about a millisecond a launch (each
//!   page touched is locked as it is faulted in, and unlocked again at exit);
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
    /// Every current writable mapping not backed by a file is locked (as it is touched).
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
    // Future mappings first, so that nothing mapped while the current ones are read escapes.
    // SAFETY: mlockall takes flags only.
    let locked_future = unlimited && unsafe { libc::mlockall(libc::MCL_FUTURE | MCL_ONFAULT) } == 0;
    let locked = lock_anonymous_writable();
    Hardened {
        non_dumpable,
        no_core,
        locked,
        locked_future,
    }
}

/// Locks every writable mapping of this process that no file backs (`/proc/self/maps`: inode
/// 0), as its pages are touched (`MLOCK_ONFAULT`): where a secret can be. Whether all were.
fn lock_anonymous_writable() -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let mut all = true;
    for (start, end) in anonymous_writable(&maps) {
        // SAFETY: the range is one of this process's mappings; locking changes no contents.
        let done = unsafe {
            libc::mlock2(
                start as *const libc::c_void,
                end - start,
                libc::MLOCK_ONFAULT,
            )
        };
        all &= done == 0;
    }
    all
}

/// The address ranges of the writable mappings in `maps` (the text of `/proc/<pid>/maps`)
/// that no file backs.
fn anonymous_writable(maps: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    maps.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next()?, fields.next()?);
        let inode = fields.nth(2)?;
        if perms.as_bytes().get(1) != Some(&b'w') || inode != "0" {
            return None;
        }
        let (start, end) = range.split_once('-')?;
        Some((
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        ))
    })
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

#[cfg(test)]
mod tests {
    use super::anonymous_writable;

    #[test]
    fn only_writable_mappings_without_a_file_are_locked() {
        let maps = "\
55c0a0000000-55c0a1000000 r--p 00000000 08:01 1234 /usr/bin/latch
55c0a1000000-55c0a2000000 r-xp 01000000 08:01 1234 /usr/bin/latch
55c0a2000000-55c0a2100000 rw-p 02000000 08:01 1234 /usr/bin/latch
55c0a2100000-55c0a2200000 rw-p 00000000 00:00 0 
55c0a3000000-55c0a3100000 rw-p 00000000 00:00 0                          [heap]
20000000000-20040000000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 ---p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd00100000-7ffd00104000 r--p 00000000 00:00 0                          [vvar]
7ffd00104000-7ffd00106000 r-xp 00000000 00:00 0                          [vdso]
not a line
";
        let locked: Vec<(usize, usize)> = anonymous_writable(maps).collect();
        assert_eq!(
            locked,
            vec![
                (0x55c0_a210_0000, 0x55c0_a220_0000),
                (0x55c0_a300_0000, 0x55c0_a310_0000),
                (0x200_0000_0000, 0x200_4000_0000),
                (0x7ffd_0000_0000, 0x7ffd_0002_1000),
            ],
            "the .bss, the heap, an allocator arena and the stack; not code, data read from the \
             binary, guard pages or the vDSO"
        );
    }
}
