//! Moves bytes from a reader through a [`Scrubber`] to a writer, as they arrive.
//!
//! The scrubber is pure; this is its driver: it reads whatever is available (up to 64 KiB),
//! writes whatever the scrubber releases at once and flushes, calls [`Scrubber::idle`] after
//! [`IDLE`] without input while the scrubber holds bytes back, and [`Scrubber::finish`] at end
//! of stream. The read buffer is wiped when the pump ends: it held secret bytes.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::core::scrub::Scrubber;

/// Quiet spell after which held bytes are released (DESIGN §7).
pub const IDLE: Duration = Duration::from_millis(25);
const CHUNK: usize = 64 * 1024;

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The reader reached end of stream and everything was written.
    Eof,
    /// The writer's reader went away (`EPIPE`); the rest of the input was not read.
    WriterClosed,
}

/// Pumps `reader` through `scrubber` into `writer` until end of stream.
///
/// # Errors
/// An I/O error reading or writing (a closed writer is [`End::WriterClosed`], not an error).
pub async fn pump<R, W>(reader: &mut R, writer: &mut W, scrubber: &mut Scrubber) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = Zeroizing::new(vec![0u8; CHUNK]);
    let mut output = Zeroizing::new(Vec::with_capacity(CHUNK + 1024));
    loop {
        // `read` is cancel-safe: when the timer wins, no input is lost.
        let read = if scrubber.held() > 0 {
            match tokio::time::timeout(IDLE, reader.read(&mut input)).await {
                Ok(read) => read,
                Err(_quiet) => {
                    let released = Zeroizing::new(scrubber.idle());
                    if !write(writer, &released).await? {
                        return Ok(End::WriterClosed);
                    }
                    continue;
                }
            }
        } else {
            reader.read(&mut input).await
        };
        match read {
            Ok(0) => {
                let rest = Zeroizing::new(scrubber.finish());
                return Ok(if write(writer, &rest).await? {
                    End::Eof
                } else {
                    End::WriterClosed
                });
            }
            Ok(n) => {
                output.clear();
                scrubber.push_into(&input[..n], &mut output);
                if !write(writer, &output).await? {
                    return Ok(End::WriterClosed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes and flushes; `false` when the other end is gone.
async fn write<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<bool> {
    if bytes.is_empty() {
        return Ok(true);
    }
    match async {
        writer.write_all(bytes).await?;
        writer.flush().await
    }
    .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scrub::{MaskStyle, PatternSet};
    use tokio::io::AsyncWriteExt;

    fn scrubber() -> Scrubber {
        let set =
            PatternSet::build([("TOKEN", b"sk-live-4f9a8b7c6d5e".as_slice())]).expect("builds");
        set.scrubber(MaskStyle::Name)
    }

    #[tokio::test]
    async fn pumps_and_masks_to_end_of_stream() {
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let mut out = Vec::new();
        let writer = tokio::spawn(async move {
            tx.write_all(b"key sk-live-4f9").await.expect("write");
            tx.write_all(b"a8b7c6d5e done\n").await.expect("write");
        });
        let end = pump(&mut rx, &mut out, &mut scrubber())
            .await
            .expect("pumps");
        writer.await.expect("joins");
        assert_eq!(end, End::Eof);
        assert_eq!(out, b"key [MASKED:TOKEN] done\n");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_releases_a_held_tail_after_25ms() {
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let (mut out_tx, mut out_rx) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            let mut s = scrubber();
            pump(&mut rx, &mut out_tx, &mut s).await
        });
        tx.write_all(b"Password: sk-li").await.expect("write");
        let mut got = vec![0u8; 10];
        out_rx
            .read_exact(&mut got)
            .await
            .expect("prompt arrives at once");
        assert_eq!(got, b"Password: ");
        // The paused clock advances to the idle deadline only once everything else waits.
        let mut marker = vec![0u8; b"[MASKED:TOKEN:partial]".len()];
        out_rx.read_exact(&mut marker).await.expect("idle marker");
        assert_eq!(marker, b"[MASKED:TOKEN:partial]");
        drop(tx);
        assert_eq!(task.await.expect("joins").expect("pumps"), End::Eof);
    }
}
