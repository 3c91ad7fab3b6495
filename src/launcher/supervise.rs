//! The supervisor: starts the child, pumps its output through the scrubber, forwards signals,
//! reaps, enforces `--timeout`, drains, and reports how the child ended (DESIGN §6).
//!
//! Hand-written because no crate combines what is needed here: tini's semantics (signal
//! forwarding, reaping every orphan as PID 1 or subreaper, 128+N), a pseudo-terminal with raw
//! mode and window sizes, and streaming scrubbing with idle release. `tokio::process` would
//! install its own `SIGCHLD` handling and race a `waitpid(-1)` loop; here one loop on the main
//! thread owns all waiting and all signals:
//!
//! - signals arrive on a `signalfd` ([`super::signals`]), blocked since before any thread
//!   started;
//! - each output stream has a pump thread ([`super::pump`]) with blocking I/O; when every pump
//!   has ended, a pipe they all hold a write end of hangs up;
//! - the loop `poll`s both, with a timeout for the next deadline (`--timeout`, `--kill-after`,
//!   the drain grace).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::child::{self, SpawnError, Spec, Streams};
use super::pty::{Pty, RawMode, copy_window_size};
use super::pump::{End, Sink, pump};
use super::signals::{FORWARDED, Signals};
use crate::core::exit::ChildExit;
use crate::core::scrub::{MaskStyle, PatternSet, PendingSet, Scrubber};

/// How long output is still read after the child exits, for descendants that keep its pipes
/// open. After that the pumps stop and release what they hold (masked).
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How the child's output reaches the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// stdout and stderr as two pipes, each scrubbed; stdin inherited.
    Pipes,
    /// A pseudo-terminal: one stream, scrubbed; stdin forwarded.
    Pty,
}

/// Everything the supervisor needs, decided before it starts.
#[derive(Debug)]
pub struct Plan {
    /// The command and its environment.
    pub spec: Spec,
    /// Pipes or pseudo-terminal.
    pub mode: Mode,
    /// Forward signals to the child's process group instead of the child alone.
    pub signal_group: bool,
    /// Become a subreaper (`PR_SET_CHILD_SUBREAPER`) and reap every orphan.
    pub subreaper: bool,
    /// Stop the child after this long.
    pub timeout: Option<Duration>,
    /// Between the timeout's `SIGTERM` and its `SIGKILL`.
    pub kill_after: Duration,
    /// What to mask: its automata are built while the command starts.
    pub patterns: PendingSet,
    /// How to mask.
    pub style: MaskStyle,
    /// Where the scrubbed transcript also goes.
    pub log: Option<File>,
    /// Hangs up if the credential broker ends (DESIGN §13 "Lifecycle"): the child is then
    /// killed.
    pub broker_alive: Option<io::PipeReader>,
}

/// How the run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the child ended.
    pub exit: ChildExit,
    /// `--timeout` expired.
    pub timed_out: bool,
    /// Masked regions per secret name, over every stream.
    pub masked: BTreeMap<String, u64>,
    /// Wall time from start to exit.
    pub duration: Duration,
    /// The credential broker ended while the child ran, and the child was killed.
    pub broker_died: bool,
}

/// Why the supervisor could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The command did not start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A system call the supervisor depends on failed.
    #[error("cannot {what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<E: Into<io::Error>>(what: &'static str) -> impl FnOnce(E) -> LaunchError {
    move |e| LaunchError::Io {
        what,
        source: e.into(),
    }
}

type PumpHandle = JoinHandle<(Scrubber, io::Result<End>)>;

/// Runs the child to its end.
///
/// # Errors
/// [`LaunchError`]: the command did not start, or the supervisor's own setup failed (in which
/// case no child is running). `mark` names each phase as it ends (the launch profile of
/// `latch -vv run`).
pub fn supervise(
    plan: Plan,
    signals: &Signals,
    mut mark: impl FnMut(&str),
) -> Result<Outcome, LaunchError> {
    if plan.subreaper {
        nix::sys::prctl::set_child_subreaper(true).map_err(io_err("become a subreaper"))?;
    }
    let reap_all = plan.subreaper || nix::unistd::getpid().as_raw() == 1;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stdin_tty = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
    let stdout_tty = nix::unistd::isatty(stdout.as_fd()).unwrap_or(false);
    let outer = if stdin_tty {
        Some(stdin.as_fd())
    } else if stdout_tty {
        Some(stdout.as_fd())
    } else {
        None
    };

    let mut take_terminal = false;
    let mut master = None;
    let mut raw = None;
    let streams = match plan.mode {
        Mode::Pipes => {
            take_terminal = child::owns_terminal();
            Streams::Pipes { take_terminal }
        }
        Mode::Pty => {
            let pty = Pty::open(outer).map_err(io_err("open a pseudo-terminal"))?;
            if stdin_tty {
                raw = Some(RawMode::enter(stdin.as_fd()).map_err(io_err("set raw mode"))?);
            }
            master = Some(pty.master);
            Streams::Pty(pty.slave)
        }
    };
    let started = child::spawn(plan.spec, streams)?;
    let start = Instant::now();
    let pid = started.pid;
    tracing::debug!(pid = pid.as_raw(), mode = ?plan.mode, "child started");
    mark("start of the command");
    // The masking automata are built while the command starts: nothing can fail here any more
    // (`PatternSet::prepare` checked it before the start), and the command's first output
    // waits in its pipe (or the terminal's buffer) until a pump reads it through them, so no
    // byte passes unmasked. (Built here rather than on a thread started before the command:
    // that would gain little on two cores and make the command PID 3 in a container.)
    let patterns = plan.patterns.build();
    // Kept until latch exits, then never freed: the automata hold no plaintext (DESIGN §6),
    // and freeing them would wipe their tables block by block just before the process ends,
    // which returns the pages to the kernel anyway (the launch profile's drain).
    std::mem::forget(patterns.clone());
    mark("masking automaton");

    let (stop_rx, stop_tx) = io::pipe().map_err(io_err("create a pipe"))?;
    let (done_rx, done_tx) = io::pipe().map_err(io_err("create a pipe"))?;
    let outputs = Outputs {
        stop: stop_rx,
        done: done_tx,
        log: plan.log.map(|file| Arc::new(Mutex::new(file))),
        patterns,
        style: plan.style,
    };
    let pumps = outputs.start(started, master.as_ref())?;
    mark("output pumps");

    let mut run = Running {
        pid,
        reap_all,
        signal_group: plan.signal_group,
        status: None,
        raw: raw.as_ref(),
        master: master.as_ref(),
        stopped_child: false,
        broker_died: false,
    };
    let deadline = plan.timeout.map(|t| (start + t, plan.kill_after));
    let (exit, timed_out) = run.wait(
        signals,
        &done_rx,
        plan.broker_alive.as_ref(),
        deadline,
        take_terminal,
    )?;
    let broker_died = run.broker_died;
    let duration = start.elapsed();
    mark("the command's run");
    drop(stop_tx);
    let masked = collect(pumps);
    drop(raw);
    mark("drain of its output");
    Ok(Outcome {
        exit,
        timed_out,
        masked,
        duration,
        broker_died,
    })
}

/// Joins the pumps (they have ended, or are stopping) and sums their masked counts.
fn collect(pumps: Vec<PumpHandle>) -> BTreeMap<String, u64> {
    let mut masked = BTreeMap::new();
    for handle in pumps {
        let Ok((scrubber, end)) = handle.join() else {
            tracing::warn!("an output pump failed; its output was dropped");
            continue;
        };
        if let Err(e) = end {
            tracing::warn!("output lost: {e}");
        }
        for (name, count) in scrubber.counts() {
            if count > 0 {
                *masked.entry(name.to_owned()).or_insert(0) += count;
            }
        }
    }
    masked
}

/// The child's state as the loop sees it.
#[allow(clippy::struct_excessive_bools)] // independent facts about the child
struct Running<'a> {
    pid: Pid,
    reap_all: bool,
    signal_group: bool,
    status: Option<ChildExit>,
    raw: Option<&'a RawMode>,
    master: Option<&'a OwnedFd>,
    /// latch stopped the child's group for a job-control stop ([`Self::suspend`]).
    stopped_child: bool,
    /// The broker ended and the child was killed for it.
    broker_died: bool,
}

impl Running<'_> {
    /// The loop: signals and the pumps' end, with deadlines for `--timeout` (`deadline`: when,
    /// and the grace before `SIGKILL`) and the drain grace. Returns how the child ended and
    /// whether the timeout fired.
    fn wait(
        &mut self,
        signals: &Signals,
        pumps_done: &io::PipeReader,
        broker_alive: Option<&io::PipeReader>,
        deadline: Option<(Instant, Duration)>,
        take_terminal: bool,
    ) -> Result<(ChildExit, bool), LaunchError> {
        let mut timed_out = false;
        let mut term_at = deadline.map(|(at, _)| at);
        let kill_after = deadline.map_or(Duration::ZERO, |(_, grace)| grace);
        let mut kill_at = None;
        let mut drain_until = None;
        let mut done = false;
        loop {
            let now = Instant::now();
            match self.status {
                None => {
                    if term_at.is_some_and(|t| now >= t) {
                        tracing::warn!("--timeout expired: sending SIGTERM to the command");
                        timed_out = true;
                        term_at = None;
                        kill_at = Some(now + kill_after);
                        child::send(self.pid, Signal::SIGTERM, true);
                    }
                    if kill_at.is_some_and(|t| now >= t) {
                        tracing::warn!("the command outlived --kill-after: sending SIGKILL");
                        kill_at = None;
                        child::send(self.pid, Signal::SIGKILL, true);
                    }
                }
                Some(exit) => {
                    if done {
                        return Ok((exit, timed_out));
                    }
                    if drain_until.is_some_and(|t| now >= t) {
                        tracing::debug!("drain grace over: descendants still hold the output");
                        return Ok((exit, timed_out));
                    }
                }
            }
            let next = [term_at, kill_at, drain_until].into_iter().flatten().min();
            let timeout = next.map_or(PollTimeout::NONE, |t| {
                PollTimeout::try_from(t.saturating_duration_since(now) + Duration::from_millis(1))
                    .unwrap_or(PollTimeout::MAX)
            });
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let watch_broker = broker_alive.filter(|_| !self.broker_died && self.status.is_none());
            if let Some(alive) = watch_broker {
                fds.push(PollFd::new(alive.as_fd(), PollFlags::POLLIN));
            }
            if !done {
                fds.push(PollFd::new(pumps_done.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(io_err("wait for signals")(e)),
            }
            let fired = |fd: Option<&PollFd<'_>>| {
                fd.and_then(PollFd::revents).is_some_and(|r| !r.is_empty())
            };
            let broker_gone = watch_broker.is_some() && fired(fds.get(1));
            done |= fired(fds.get(if watch_broker.is_some() { 2 } else { 1 }));
            drop(fds);
            if broker_gone {
                // Nothing the broker held can reach the child any more; it must not run on
                // with placeholders that authenticate nothing (DESIGN §13).
                tracing::error!("the credential broker stopped: killing the command");
                self.broker_died = true;
                child::send(self.pid, Signal::SIGKILL, true);
            }
            while let Some(signal) = signals.next().map_err(io_err("read signals"))? {
                self.on_signal(signal);
            }
            if self.status.is_some() && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN_GRACE);
                if take_terminal {
                    give_back_terminal();
                }
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGCHLD => self.reap(),
            Signal::SIGWINCH => match (self.raw, self.master) {
                (Some(raw), Some(master)) => copy_window_size(raw.as_fd(), master.as_fd()),
                (None, Some(master)) => copy_window_size(io::stdout().as_fd(), master.as_fd()),
                _ => self.forward(signal),
            },
            Signal::SIGTSTP => self.suspend(),
            Signal::SIGCONT => self.resume(),
            s if FORWARDED.contains(&s) => self.forward(s),
            _ => {}
        }
    }

    /// Job control in pty mode (`SIGTSTP`: sent to latch, or raised by the stdin forwarder for
    /// a Ctrl-Z typed into the child's terminal). The child leads a session of its own whose
    /// parent, latch, is in another session, so its process group is *orphaned*: the kernel
    /// drops the terminal's `SIGTSTP` for it (POSIX job control). latch therefore stops it
    /// itself with `SIGSTOP` when the child's own group has the terminal (a shell inside, with
    /// a job in front, does its own job control), gives the outer terminal back, and stops as
    /// a shell job does; [`Self::resume`] undoes both on `SIGCONT` (`fg`).
    fn suspend(&mut self) {
        if self.status.is_none() && self.master.is_some_and(|m| child_in_front(m, self.pid)) {
            child::send(self.pid, Signal::SIGSTOP, true);
            self.stopped_child = true;
        }
        if let Some(raw) = self.raw {
            raw.restore();
        }
        stop_self();
    }

    /// `SIGCONT`: raw mode and the window size again, and the child continued if latch stopped
    /// it.
    fn resume(&mut self) {
        if let (Some(raw), Some(master)) = (self.raw, self.master) {
            let _ = raw.apply_raw();
            copy_window_size(raw.as_fd(), master.as_fd());
        }
        if std::mem::take(&mut self.stopped_child) && self.status.is_none() {
            child::send(self.pid, Signal::SIGCONT, true);
        }
    }

    fn forward(&self, signal: Signal) {
        if self.status.is_none() {
            tracing::debug!(%signal, "forwarding");
            child::send(self.pid, signal, self.signal_group);
        }
    }

    /// Collects every child that has ended: only ours, or every orphan as PID 1 / subreaper.
    fn reap(&mut self) {
        let target = if self.reap_all {
            Pid::from_raw(-1)
        } else {
            self.pid
        };
        loop {
            match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.pid => {
                    self.status = Some(ChildExit::Exited(code));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == self.pid => {
                    self.status = Some(ChildExit::Signaled(signal as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {} // an orphan reaped, or a state we did not ask for
            }
            if !self.reap_all && self.status.is_some() {
                return;
            }
        }
    }
}

/// Whether `typed` holds the suspend character of the child's terminal while that terminal
/// turns it into a signal (`ISIG`) for the child's own group.
fn suspends(master: &File, typed: &[u8], child: Pid) -> bool {
    use nix::sys::termios::{LocalFlags, SpecialCharacterIndices, tcgetattr};
    let Ok(settings) = tcgetattr(master.as_fd()) else {
        return false;
    };
    let key = settings.control_chars[SpecialCharacterIndices::VSUSP as usize];
    // 0 is _POSIX_VDISABLE: no suspend key.
    settings.local_flags.contains(LocalFlags::ISIG)
        && key != 0
        && typed.contains(&key)
        && nix::unistd::tcgetpgrp(master.as_fd()).ok() == Some(child)
}

/// Whether the child's own process group is the foreground of its pseudo-terminal.
fn child_in_front(master: &OwnedFd, child: Pid) -> bool {
    nix::unistd::tcgetpgrp(master.as_fd()).ok() == Some(child)
}

/// Stops latch as a shell job stops: with `SIGTSTP` (the shell says "Stopped"), unblocked for
/// this thread only around the raise; with `SIGSTOP` when latch's own group is orphaned (it
/// leads its session, or its parent is in another session), for which the kernel drops
/// `SIGTSTP`. Returns once continued.
fn stop_self() {
    use nix::unistd::{getpgid, getpgrp, getppid, getsid};
    let parent = getppid();
    let orphaned = getpgid(Some(parent)).ok() == Some(getpgrp())
        || getsid(Some(parent)).ok() != getsid(None).ok();
    if orphaned {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGSTOP);
        return;
    }
    let mut tstp = nix::sys::signal::SigSet::empty();
    tstp.add(Signal::SIGTSTP);
    let _ = tstp.thread_unblock();
    let _ = nix::sys::signal::raise(Signal::SIGTSTP);
    let _ = tstp.thread_block();
}

/// Gives the terminal's foreground back to the launcher's group once the child is gone.
fn give_back_terminal() {
    let mut ttou = nix::sys::signal::SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let _ = ttou.thread_block();
    let _ = nix::unistd::tcsetpgrp(io::stdin().as_fd(), nix::unistd::getpgrp());
    let _ = ttou.thread_unblock();
}

/// What every pump shares: the stop request, the end signal, the transcript, the patterns.
struct Outputs {
    stop: io::PipeReader,
    done: io::PipeWriter,
    log: Option<Arc<Mutex<File>>>,
    patterns: PatternSet,
    style: MaskStyle,
}

impl Outputs {
    /// One pump per output stream of the child (and the stdin forwarder in pty mode). The
    /// `done` pipe hangs up once every pump has ended, which is when `self` is dropped too.
    fn start(
        self,
        started: child::Started,
        master: Option<&OwnedFd>,
    ) -> Result<Vec<PumpHandle>, LaunchError> {
        let mut pumps = Vec::new();
        let pid = started.pid;
        if let Some(out) = started.stdout {
            pumps.push(self.pump(Box::new(out), &io::stdout())?);
        }
        if let Some(err) = started.stderr {
            pumps.push(self.pump(Box::new(err), &io::stderr())?);
        }
        if let Some(master) = master {
            let dup = || {
                master
                    .try_clone()
                    .map(File::from)
                    .map_err(io_err("duplicate the pty"))
            };
            pumps.push(self.pump(Box::new(dup()?), &io::stdout())?);
            forward_stdin(dup()?, pid)?;
        }
        Ok(pumps)
    }

    fn pump(&self, reader: Box<dyn ReadFd>, out: &dyn AsFd) -> Result<PumpHandle, LaunchError> {
        let out = out
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(io_err("duplicate an output"))?;
        let stop = self.stop.try_clone().map_err(io_err("duplicate a pipe"))?;
        let done = self.done.try_clone().map_err(io_err("duplicate a pipe"))?;
        let sink = Sink::new(out, self.log.clone());
        let scrubber = self.patterns.scrubber(self.style);
        Ok(std::thread::spawn(move || {
            run_pump(reader, sink, scrubber, &stop, done)
        }))
    }
}

/// A readable descriptor a pump can own.
trait ReadFd: Read + AsFd + Send {}
impl<T: Read + AsFd + Send> ReadFd for T {}

fn run_pump(
    mut reader: Box<dyn ReadFd>,
    mut sink: Sink<File>,
    mut scrubber: Scrubber,
    stop: &io::PipeReader,
    done: io::PipeWriter,
) -> (Scrubber, io::Result<End>) {
    let end = pump(&mut reader, &mut sink, &mut scrubber, Some(stop.as_fd()));
    // Closing our end of the child's pipe first: a writer still holding it gets EPIPE.
    drop(reader);
    drop(done);
    (scrubber, end)
}

/// Copies the launcher's stdin into the pseudo-terminal until either side closes. Keystrokes
/// are the person's input, not the child's output: they are not scrubbed. A suspend key
/// (Ctrl-Z) that the child's terminal turns into `SIGTSTP` for the child's own, orphaned group
/// (which the kernel drops) is also raised to latch, whose supervisor stops both
/// ([`Running::suspend`]). The thread is not joined: it may be blocked reading a terminal when
/// the run ends.
fn forward_stdin(mut master: File, child: Pid) -> Result<(), LaunchError> {
    let mut input = File::from(
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err("duplicate stdin"))?,
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if master.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    if suspends(&master, &buf[..n], child) {
                        let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGTSTP);
                    }
                }
            }
        }
    });
    Ok(())
}
