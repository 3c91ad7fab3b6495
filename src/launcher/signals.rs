//! The launcher's signals, read synchronously from a `signalfd` (DESIGN §6 "Process
//! semantics").
//!
//! Every signal the launcher acts on is blocked in the main thread before any other thread
//! starts, so every later thread inherits the mask and no signal can land on a thread that does
//! not expect it; the kernel queues them on the `signalfd` instead. Blocked signals are also
//! queued for PID 1 in a PID namespace, whose default dispositions would otherwise drop them
//! (kernel `sig_ignored`: "blocked signals are never ignored"). The child gets the original
//! mask back before `execve` ([`Signals::original`], applied in its `pre_exec`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals sent to the launcher that it forwards to the child.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The blocked set and the descriptor they are read from.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    original: SigSet,
}

impl Signals {
    /// Blocks [`FORWARDED`], `SIGCHLD`, `SIGWINCH` and `SIGCONT` (and `SIGTSTP` when
    /// `job_control`, for the pseudo-terminal mode) in the calling thread and opens a
    /// `signalfd` for them. Call before any thread starts.
    ///
    /// # Errors
    /// The mask or the descriptor cannot be set up.
    pub fn block(job_control: bool) -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in FORWARDED {
            set.add(signal);
        }
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGWINCH);
        set.add(Signal::SIGCONT);
        if job_control {
            set.add(Signal::SIGTSTP);
        }
        let mut original = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut original))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Self { fd, original })
    }

    /// The mask the launcher was started with, for the child.
    #[must_use]
    pub fn original(&self) -> SigSet {
        self.original
    }

    /// The next queued signal, if any (never blocks).
    ///
    /// # Errors
    /// Reading the descriptor failed.
    pub fn next(&self) -> io::Result<Option<Signal>> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    let number = i32::try_from(info.ssi_signo).unwrap_or(0);
                    // A number nix does not know is not one of ours: read on.
                    if let Ok(signal) = Signal::try_from(number) {
                        return Ok(Some(signal));
                    }
                }
                Ok(None) => return Ok(None),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The forwarded signals whose disposition was "ignore" when latch started (`nohup` ignores
/// SIGHUP; a background job of a non-interactive shell ignores SIGINT and SIGQUIT). The child
/// inherits that disposition through `execve`, as under tini or a plain `exec`, so a signal
/// forwarded to it does nothing, and a shell cannot even trap it (POSIX `trap`).
#[must_use]
pub fn inherited_ignored() -> Vec<Signal> {
    FORWARDED
        .into_iter()
        .filter(|&signal| {
            let mut old = std::mem::MaybeUninit::<nix::libc::sigaction>::zeroed();
            // SAFETY: a null new action only reads the current one into `old`, which is valid
            // for writes; zeroed is a valid `sigaction`.
            let read =
                unsafe { nix::libc::sigaction(signal as i32, std::ptr::null(), old.as_mut_ptr()) };
            // SAFETY: initialised (zeroed, then written by a successful call).
            read == 0 && unsafe { old.assume_init() }.sa_sigaction == nix::libc::SIG_IGN
        })
        .collect()
}

impl Signals {
    /// The descriptor, for an event loop to wait on.
    #[must_use]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd as _;
        self.fd.as_raw_fd()
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
