//! The pseudo-terminal mode (DESIGN §6 "Modes"): the child gets a terminal of its own, the
//! outer terminal is put in raw mode so keystrokes reach the child unchanged, window sizes are
//! copied across, and the outer terminal is restored on every exit path: normal return, error,
//! panic (a hook) and job-control stops (`SIGTSTP`, handled by the supervisor).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::libc;
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{self, SetArg, Termios};

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// The outer terminal's settings before raw mode, for the panic hook.
static SAVED: Mutex<Option<(i32, libc::termios)>> = Mutex::new(None);

/// A new pseudo-terminal: the launcher keeps `master`; the child gets `slave` as its
/// controlling terminal and standard streams.
#[derive(Debug)]
pub struct Pty {
    /// The launcher's side.
    pub master: OwnedFd,
    /// The child's side.
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a pseudo-terminal with the outer terminal's size and settings (when `outer` is a
    /// terminal). Both ends are close-on-exec; the child's standard streams are duplicates.
    ///
    /// # Errors
    /// No pseudo-terminal can be opened.
    pub fn open(outer: Option<BorrowedFd<'_>>) -> io::Result<Self> {
        let size = outer.and_then(window_size);
        let settings = outer.and_then(|fd| termios::tcgetattr(fd).ok());
        let pair = openpty(size.as_ref(), settings.as_ref())?;
        for fd in [&pair.master, &pair.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok(Self {
            master: pair.master,
            slave: pair.slave,
        })
    }
}

/// The window size of terminal `fd`, if it is one.
#[must_use]
pub fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `size`.
    unsafe { get_winsize(fd.as_raw_fd(), &raw mut size) }.ok()?;
    Some(size)
}

/// Copies the window size of `from` onto `to` (the kernel then sends `SIGWINCH` to the
/// foreground process group of `to`).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some(size) = window_size(from) {
        // SAFETY: TIOCSWINSZ reads one `winsize`.
        let _ = unsafe { set_winsize(to.as_raw_fd(), &raw const size) };
    }
}

/// The outer terminal in raw mode; restores the saved settings when dropped.
#[derive(Debug)]
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Puts terminal `fd` in raw mode (`cfmakeraw`), saving its settings for restoration.
    ///
    /// # Errors
    /// `fd` is not a terminal or cannot be changed.
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let saved = termios::tcgetattr(fd)?;
        if let Ok(mut slot) = SAVED.lock() {
            *slot = Some((fd.as_raw_fd(), saved.clone().into()));
        }
        install_panic_hook();
        let guard = Self {
            fd: fd.as_raw_fd(),
            saved,
        };
        guard.apply_raw()?;
        Ok(guard)
    }

    /// Raw mode again (after a job-control stop).
    ///
    /// # Errors
    /// The terminal cannot be changed.
    pub fn apply_raw(&self) -> io::Result<()> {
        let mut raw = self.saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(self.borrow(), SetArg::TCSADRAIN, &raw)?;
        Ok(())
    }

    /// The saved settings back (before a job-control stop, and on drop).
    pub fn restore(&self) {
        let _ = termios::tcsetattr(self.borrow(), SetArg::TCSADRAIN, &self.saved);
    }

    fn borrow(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is one of the launcher's standard streams, open for the whole
        // life of the process.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
        if let Ok(mut slot) = SAVED.lock() {
            *slot = None;
        }
    }
}

impl AsFd for RawMode {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.borrow()
    }
}

/// On panic, restore the outer terminal first, so the message is readable and the shell usable.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(slot) = SAVED.lock()
                && let Some((fd, saved)) = slot.as_ref()
            {
                // SAFETY: restores saved settings on a descriptor the launcher owns.
                unsafe { libc::tcsetattr(*fd, libc::TCSADRAIN, saved) };
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::LocalFlags;

    #[test]
    fn a_panic_restores_the_outer_terminal() {
        let pair = openpty(None, None).expect("a pseudo-terminal");
        let outer = pair.slave;
        let canonical = |fd: &OwnedFd| {
            termios::tcgetattr(fd)
                .expect("termios")
                .local_flags
                .contains(LocalFlags::ICANON)
        };
        assert!(canonical(&outer));
        let raw = RawMode::enter(outer.as_fd()).expect("raw mode");
        assert!(!canonical(&outer));
        // The guard is leaked, so only the panic hook can restore the settings.
        std::mem::forget(raw);
        let result = std::panic::catch_unwind(|| panic!("deliberate, for the test"));
        assert!(result.is_err());
        assert!(
            canonical(&outer),
            "the panic hook did not restore the terminal"
        );
        if let Ok(mut slot) = SAVED.lock() {
            *slot = None;
        }
    }
}
