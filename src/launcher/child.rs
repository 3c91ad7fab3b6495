//! Turns a launch plan into a process, at exactly one point (STYLE "describe, then do").
//!
//! `std::process::Command` does the `fork`/`execve`, the `PATH` lookup and the reporting of
//! `execve` errors; what it cannot know is done in `pre_exec`, which runs in the child between
//! `fork` and `execve` and may only make async-signal-safe calls (no allocation):
//! the child's own process group or session, the controlling terminal, and the launcher's
//! original signal mask (std resets the mask to empty; DESIGN §6 wants the original back).
//!
//! Nothing here waits for the child: the supervisor's reaper owns all waiting.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::libc;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;
use zeroize::Zeroizing;

/// The child's standard streams.
#[derive(Debug)]
pub enum Streams {
    /// stdin inherited; stdout and stderr as two pipes read by the launcher.
    Pipes {
        /// Make the child's process group the terminal's foreground group (the launcher's own
        /// group is in the foreground of a terminal on stdin).
        take_terminal: bool,
    },
    /// All three on this pseudo-terminal side, which becomes the controlling terminal of a new
    /// session.
    Pty(OwnedFd),
}

/// What to start.
pub struct Spec {
    /// The command, looked up on `PATH` when it has no `/`.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The complete environment, values in zeroizing buffers.
    pub env: Vec<(OsString, Zeroizing<Vec<u8>>)>,
    /// The signal mask the child starts with.
    pub mask: SigSet,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.len())
            .finish_non_exhaustive()
    }
}

/// Why the command did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No such command (exit 127).
    #[error("command not found: {program}")]
    NotFound {
        /// As given.
        program: String,
    },
    /// A script whose `#!` interpreter is missing (exit 127, as a missing command).
    #[error("cannot run {program}: its interpreter {interpreter} (from its #! line) is not there")]
    NoInterpreter {
        /// As given.
        program: String,
        /// The interpreter its first line names.
        interpreter: String,
    },
    /// It exists but cannot be executed (exit 126).
    #[error("cannot execute {program}")]
    NotExecutable {
        /// As given.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A started child: its PID and, in pipe mode, the launcher's ends of its output pipes.
#[derive(Debug)]
pub struct Started {
    /// The child's PID, also its process group id.
    pub pid: Pid,
    /// Its stdout pipe (pipe mode).
    pub stdout: Option<std::process::ChildStdout>,
    /// Its stderr pipe (pipe mode).
    pub stderr: Option<std::process::ChildStderr>,
}

/// Starts the child. The spec's values are dropped (and wiped) before this returns.
///
/// # Errors
/// [`SpawnError`].
pub fn spawn(spec: Spec, streams: Streams) -> Result<Started, SpawnError> {
    let search = search_path(&spec.env);
    let (mut command, program) = command(spec.program, spec.args, &spec.env);
    let mask = spec.mask;
    // The child dies with latch (SIGKILL, the OOM killer): the kernel sends it SIGKILL when the
    // thread that forked it ends, and this is the main thread, which lives until latch exits.
    let parent = nix::unistd::getpid();
    match streams {
        Streams::Pipes { take_terminal } => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            // SAFETY: only async-signal-safe calls, no allocation.
            unsafe {
                command.pre_exec(move || {
                    die_with(parent)?;
                    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                    if take_terminal {
                        // From a background group, tcsetpgrp raises SIGTTOU unless blocked.
                        let mut ttou = SigSet::empty();
                        ttou.add(Signal::SIGTTOU);
                        ttou.thread_block()?;
                        let _ = nix::unistd::tcsetpgrp(
                            std::os::fd::BorrowedFd::borrow_raw(0),
                            nix::unistd::getpid(),
                        );
                    }
                    mask.thread_set_mask()?;
                    Ok(())
                });
            }
        }
        Streams::Pty(slave) => {
            let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
            let io_error = |e: io::Error| SpawnError::NotExecutable {
                program: program.clone(),
                source: e,
            };
            command
                .stdin(dup(&slave).map_err(io_error)?)
                .stdout(dup(&slave).map_err(io_error)?)
                .stderr(Stdio::from(slave));
            // SAFETY: only async-signal-safe calls, no allocation.
            unsafe {
                command.pre_exec(move || {
                    die_with(parent)?;
                    nix::unistd::setsid()?;
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    mask.thread_set_mask()?;
                    Ok(())
                });
            }
        }
    }
    let result = command.spawn();
    // The environment strings are freed (and wiped) here, before anything else happens.
    drop(command);
    let mut child = result.map_err(|e| classify(e, program, search.as_deref()))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    Ok(Started {
        pid: Pid::from_raw(pid),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    })
}

/// Replaces the launcher with the command (`--no-scrub`): same PID, nothing left behind.
/// Returns only on failure.
#[must_use]
pub fn exec(spec: Spec) -> SpawnError {
    let search = search_path(&spec.env);
    let (mut command, program) = command(spec.program, spec.args, &spec.env);
    let mask = spec.mask;
    // SAFETY: only async-signal-safe calls, no allocation.
    unsafe {
        command.pre_exec(move || {
            mask.thread_set_mask()?;
            Ok(())
        });
    }
    classify(command.exec(), program, search.as_deref())
}

/// In the child, before `execve`: SIGKILL when latch's forking thread ends; and if latch is
/// already gone (it died between `fork` and here), do not start at all.
fn die_with(parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Err(io::Error::other("latch is gone"));
    }
    Ok(())
}

/// The `PATH` the child is started with (where `Command` looks the program up).
fn search_path(env: &[(OsString, Zeroizing<Vec<u8>>)]) -> Option<OsString> {
    env.iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| std::ffi::OsStr::from_bytes(value).to_owned())
}

/// The file `program` names: itself when it has a `/`, else the first match on `path`.
fn located(program: &str, path: Option<&std::ffi::OsStr>) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Some(program.into());
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The interpreter a script's `#!` line names, if the file is such a script.
fn interpreter_of(file: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(ToOwned::to_owned)
}

fn command(
    program: OsString,
    args: Vec<OsString>,
    env: &[(OsString, Zeroizing<Vec<u8>>)],
) -> (Command, String) {
    let shown = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    command.args(args).env_clear();
    for (name, value) in env {
        command.env(name, std::ffi::OsStr::from_bytes(value));
    }
    (command, shown)
}

/// `ENOENT` is 127 (said as a missing interpreter when the program is a script whose `#!`
/// interpreter is missing); anything else that stops `execve` is 126, as in a shell and tini.
fn classify(error: io::Error, program: String, path: Option<&std::ffi::OsStr>) -> SpawnError {
    if error.kind() == io::ErrorKind::NotFound {
        let script = located(&program, path).filter(|p| p.is_file());
        if let Some(interpreter) = script.as_deref().and_then(interpreter_of)
            && !std::path::Path::new(&interpreter).exists()
        {
            return SpawnError::NoInterpreter {
                program,
                interpreter,
            };
        }
        SpawnError::NotFound { program }
    } else {
        SpawnError::NotExecutable {
            program,
            source: error,
        }
    }
}

/// Sends `signal` to the child, or to its whole process group.
pub fn send(pid: Pid, signal: Signal, group: bool) {
    let target = if group {
        Pid::from_raw(-pid.as_raw())
    } else {
        pid
    };
    if let Err(e) = nix::sys::signal::kill(target, signal) {
        tracing::debug!(%signal, error = %e, "cannot signal the child (gone already?)");
    }
}

/// Whether stdin is a terminal whose foreground process group is the launcher's own.
#[must_use]
pub fn owns_terminal() -> bool {
    let stdin = std::io::stdin();
    let fd = std::os::fd::AsFd::as_fd(&stdin);
    nix::unistd::isatty(fd).unwrap_or(false)
        && nix::unistd::tcgetpgrp(fd).ok() == Some(nix::unistd::getpgrp())
}
