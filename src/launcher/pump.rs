//! Moves bytes from a descriptor through a [`Scrubber`] to a writer, as they arrive.
//!
//! The scrubber is pure; this is its driver: it waits with `poll` for input (and for a stop
//! request), reads whatever is available (up to 64 KiB), writes whatever the scrubber releases
//! at once, calls [`Scrubber::idle`] after [`IDLE`] without input while the scrubber holds bytes
//! back, and [`Scrubber::finish`] at end of stream. Each pump runs on a thread of its own with
//! blocking I/O: no async runtime sits between the child's pipe and the launcher's stdout, and
//! a slow reader of one stream never delays the other.
//!
//! Input bytes are wiped as soon as the scrubber has taken them (they may hold a secret), and
//! the buffers are wiped when the pump ends.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use zeroize::Zeroizing;

use crate::core::scrub::Scrubber;

/// Quiet spell after which held bytes are released (DESIGN §7).
pub const IDLE: Duration = Duration::from_millis(25);
const CHUNK: usize = 64 * 1024;

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The input reached end of stream and everything was written.
    Eof,
    /// The writer's reader went away (`EPIPE`); the rest of the input was not read.
    WriterClosed,
    /// Asked to stop (the grace for draining ran out); what was held was released.
    Stopped,
}

/// Where a pump writes: one output, plus the `--log` transcript shared by every pump.
#[derive(Debug)]
pub struct Sink<W> {
    out: W,
    log: Option<Arc<Mutex<std::fs::File>>>,
}

impl<W: Write> Sink<W> {
    /// A sink writing to `out` and, when given, to `log`.
    pub fn new(out: W, log: Option<Arc<Mutex<std::fs::File>>>) -> Self {
        Self { out, log }
    }

    /// Writes and flushes; `Ok(false)` when the output's reader is gone. A failing transcript is
    /// dropped with a warning and never stops the output.
    fn send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        if bytes.is_empty() {
            return Ok(true);
        }
        if let Some(log) = &self.log {
            let failed = log
                .lock()
                .map_or(true, |mut file| file.write_all(bytes).is_err());
            if failed {
                tracing::warn!("cannot write the --log transcript; it stops here");
                self.log = None;
            }
        }
        match self.out.write_all(bytes).and_then(|()| self.out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Pumps `reader` through `scrubber` into `sink` until end of stream, a closed writer, or
/// `stop` becoming readable or hung up.
///
/// # Errors
/// An I/O error reading, waiting or writing. `EIO` on read is end of stream (a
/// pseudo-terminal's master once every holder of the other side has gone).
pub fn pump<R, W>(
    reader: &mut R,
    sink: &mut Sink<W>,
    scrubber: &mut Scrubber,
    stop: Option<BorrowedFd<'_>>,
) -> io::Result<End>
where
    R: Read + AsFd,
    W: Write,
{
    let mut input = Zeroizing::new(vec![0u8; CHUNK]);
    let mut output = Zeroizing::new(Vec::with_capacity(CHUNK + 1024));
    loop {
        let timeout = if scrubber.held() > 0 {
            PollTimeout::try_from(IDLE).unwrap_or(PollTimeout::MAX)
        } else {
            PollTimeout::NONE
        };
        let (readable, stopped) = {
            let mut fds = vec![PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            if let Some(stop) = stop {
                fds.push(PollFd::new(stop, PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(0) => (false, false),
                Ok(_) => {
                    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                    (ready(&fds[0]), fds.get(1).is_some_and(ready))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if stopped && !readable {
            let rest = Zeroizing::new(scrubber.finish());
            sink.send(&rest)?;
            return Ok(End::Stopped);
        }
        if !readable {
            let released = Zeroizing::new(scrubber.idle());
            if !sink.send(&released)? {
                return Ok(End::WriterClosed);
            }
            continue;
        }
        match reader.read(&mut input) {
            Ok(0) => return finish(sink, scrubber),
            Ok(n) => {
                output.clear();
                scrubber.push_into(&input[..n], &mut output);
                // A plain fill, kept by `black_box`: the buffer is reused, not freed, and a
                // volatile byte-by-byte wipe would cost as much as the scrubbing itself.
                input[..n].fill(0);
                std::hint::black_box(&mut input[..n]);
                if !sink.send(&output)? {
                    return Ok(End::WriterClosed);
                }
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => return finish(sink, scrubber),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

fn finish<W: Write>(sink: &mut Sink<W>, scrubber: &mut Scrubber) -> io::Result<End> {
    let rest = Zeroizing::new(scrubber.finish());
    Ok(if sink.send(&rest)? {
        End::Eof
    } else {
        End::WriterClosed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scrub::{MaskStyle, PatternSet};
    use std::time::Instant;

    fn scrubber() -> Scrubber {
        let set =
            PatternSet::build([("TOKEN", b"sk-live-4f9a8b7c6d5e".as_slice())]).expect("builds");
        set.scrubber(MaskStyle::Name)
    }

    #[test]
    fn pumps_and_masks_to_end_of_stream() {
        let (mut rx, mut tx) = io::pipe().expect("pipe");
        let writer = std::thread::spawn(move || {
            tx.write_all(b"key sk-live-4f9").expect("write");
            std::thread::sleep(Duration::from_millis(5));
            tx.write_all(b"a8b7c6d5e done\n").expect("write");
        });
        let mut sink = Sink::new(Vec::new(), None);
        let end = pump(&mut rx, &mut sink, &mut scrubber(), None).expect("pumps");
        writer.join().expect("joins");
        assert_eq!(end, End::Eof);
        assert_eq!(sink.out, b"key [MASKED:TOKEN] done\n");
    }

    #[test]
    fn idle_releases_a_held_tail_and_the_rest_stays_masked() {
        let (mut rx, mut tx) = io::pipe().expect("pipe");
        let (mut out_rx, out_tx) = io::pipe().expect("pipe");
        let task = std::thread::spawn(move || {
            let mut sink = Sink::new(out_tx, None);
            pump(&mut rx, &mut sink, &mut scrubber(), None)
        });
        tx.write_all(b"Password: sk-li").expect("write");
        let mut got = vec![0u8; 10];
        out_rx.read_exact(&mut got).expect("prompt arrives at once");
        assert_eq!(got, b"Password: ");
        let mut marker = vec![0u8; b"[MASKED:TOKEN:partial]".len()];
        out_rx.read_exact(&mut marker).expect("idle marker");
        assert_eq!(marker, b"[MASKED:TOKEN:partial]");
        tx.write_all(b"ve-4f9a8b7c6d5e!").expect("write");
        drop(tx);
        assert_eq!(task.join().expect("joins").expect("pumps"), End::Eof);
        let mut rest = String::new();
        out_rx.read_to_string(&mut rest).expect("rest");
        assert!(!rest.contains("4f9a8b7c6d5e"), "{rest}");
        assert!(rest.ends_with('!'), "{rest}");
    }

    #[test]
    fn a_stop_request_ends_the_pump_with_held_bytes_masked() {
        let (mut rx, mut tx) = io::pipe().expect("pipe");
        let (stop_rx, stop_tx) = io::pipe().expect("pipe");
        tx.write_all(b"sk-live-4f9a").expect("write");
        let started = Instant::now();
        let task = std::thread::spawn(move || {
            let mut sink = Sink::new(Vec::new(), None);
            let end = pump(&mut rx, &mut sink, &mut scrubber(), Some(stop_rx.as_fd()));
            (end.expect("pumps"), sink.out)
        });
        drop(stop_tx);
        let (end, out) = task.join().expect("joins");
        assert_eq!(end, End::Stopped);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(out, b"[MASKED:TOKEN:partial]");
        drop(tx);
    }

    #[test]
    fn a_closed_reader_of_the_output_ends_the_pump() {
        let (mut rx, mut tx) = io::pipe().expect("pipe");
        let (out_rx, out_tx) = io::pipe().expect("pipe");
        drop(out_rx);
        tx.write_all(b"hello\n").expect("write");
        let mut sink = Sink::new(out_tx, None);
        let end = pump(&mut rx, &mut sink, &mut scrubber(), None).expect("pumps");
        assert_eq!(end, End::WriterClosed);
    }
}
