// SPDX-License-Identifier: GPL-2.0-or-later
//! MISC_CHECK on the event loop (`evented.rs`): the script is started
//! (its own process group, no stdin, output dropped) and the loop waits
//! for its exit on a pidfd in the checks' epoll set, so a hung script
//! holds no thread: it is killed, with everything it started, at its
//! `misc_timeout`, and only its own check fails. The exit code is judged
//! as keepalived judges it ([`judge`]).
//!
//! Where the kernel refuses `pidfd_open(2)` (before Linux 5.3, or a
//! seccomp filter), the loop looks at the script every 10 ms instead
//! ([`Script::pidfd`] is `None`); said once in the log.

use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};

use rustix::event::epoll::EventFlags;

use super::Outcome;
use super::evented::Step;
use crate::keepalived::runas::RunAs;

/// One MISC_CHECK's script, running.
pub(super) struct Script {
    /// `None` once it is reaped.
    child: Option<Child>,
    pidfd: Option<OwnedFd>,
    path: String,
    dynamic: bool,
}

/// keepalived's judgement of a script's exit: 0 is success; with
/// `misc_dynamic`, 1 is failure and 2..255 success with weight exit − 2;
/// anything else, or a signal, is failure.
pub(super) fn judge(path: &str, dynamic: bool, status: ExitStatus) -> Outcome {
    let Some(code) = status.code() else {
        return Outcome::Down(format!(
            "Misc check for [{path}] was killed by signal {}.",
            status.signal().unwrap_or(0)
        ));
    };
    match (code, dynamic) {
        (0, _) => Outcome::Up(None),
        (2..=255, true) => Outcome::Up(Some(code as u32 - 2)),
        (c, _) => Outcome::Down(format!("Misc check for [{path}] failed (exit {c}).")),
    }
}

impl Script {
    /// Start `path` (the program, then its arguments, split on white
    /// space) as `user`; `Err`: the check's failure (no program, or it
    /// cannot run, or not as `user`).
    pub(super) fn spawn(path: &str, dynamic: bool, user: &RunAs) -> Result<Script, Outcome> {
        let mut words = path.split_whitespace();
        let Some(prog) = words.next() else {
            return Err(Outcome::Down("Misc check: empty misc_path.".into()));
        };
        let mut cmd = user.command(prog, words);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = cmd.spawn().map_err(|e| {
            Outcome::Down(format!(
                "Misc check to {path} cannot run as {} ({}) ({e}).",
                user.name,
                user.ids()
            ))
        })?;
        // Not reaped yet, so the pid is still this child's.
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
            match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!(
                            "MISC_CHECK: pidfd_open refused ({e}); looking at scripts every 10 ms"
                        )
                    });
                    None
                }
            }
        });
        Ok(Script {
            child: Some(child),
            pidfd,
            path: path.to_string(),
            dynamic,
        })
    }

    /// What the event loop watches: readable once the script has exited.
    pub(super) fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Over if the script has exited (its judgement), else wait on.
    pub(super) fn ready(&mut self) -> Step {
        let Some(child) = self.child.as_mut() else {
            return Step::Done(Outcome::Down(format!(
                "Misc check to {}: already reaped.",
                self.path
            )));
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Step::Done(judge(&self.path, self.dynamic, status))
            }
            Ok(None) => Step::Wait(EventFlags::IN),
            Err(e) => {
                self.kill();
                Step::Done(Outcome::Down(format!("Misc check to {}: {e}.", self.path)))
            }
        }
    }

    /// Past `misc_timeout`: the script and everything it started killed.
    pub(super) fn timeout(&mut self) -> Outcome {
        self.kill();
        Outcome::Down(format!("Misc check for [{}] timed out.", self.path))
    }

    /// Kill the script's process group and reap the script.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Script {
    /// A check dropped while its script runs (the checker stops) leaves
    /// neither the script nor a zombie.
    fn drop(&mut self) {
        self.kill();
    }
}
