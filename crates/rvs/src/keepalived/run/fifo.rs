// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's notification FIFOs at run time (notify.c `fifo_open`,
//! `fifo_close`; ipwrapper.c `notify_fifo_vs`, `notify_fifo_rs`).
//!
//! Opening one: the FIFO is made (mode 0644; given to its user when that
//! is not rvs's) unless it exists; its reading script, if any, is started
//! with the FIFO's path as one more argument; then the FIFO is opened
//! read-write and nonblocking (so opening does not wait for a reader and
//! a write never blocks the checker), without following a symbolic link,
//! and used only if it is a FIFO owned by rvs or by its user (an
//! existing file could have been planted). What cannot be made or opened
//! is logged and left out.
//!
//! Each change is one line, `RS <real server> <virtual server> UP|DOWN`
//! or `VS <virtual server> UP|DOWN`, as keepalived's checker writes them
//! (keepalived also writes the C string's final NUL after the newline; rvs
//! writes the line alone, as keepalived's VRRP process does, so a reader
//! that reads lines gets no stray byte). A full FIFO (no reader keeping
//! up) loses the line, as in keepalived. On exit the FIFOs rvs made are
//! removed; a reload keeps the FIFOs whose settings did not change.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::keepalived::conf::{Fifo, Notifications};

use super::log;

/// One open FIFO.
struct Open {
    conf: Fifo,
    file: File,
    /// rvs made it (and removes it on close).
    made: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        // Removed first, so that a reader that reopens it when it closes
        // cannot reopen this one.
        if self.made {
            let _ = std::fs::remove_file(&self.conf.path);
        }
    }
}

/// The open FIFOs.
#[derive(Default)]
pub struct Fifos {
    open: Vec<Open>,
}

impl Fifos {
    /// Open every FIFO of `conf`.
    pub fn open(conf: &Notifications) -> Fifos {
        Fifos {
            open: conf.fifos.iter().filter_map(open_one).collect(),
        }
    }

    /// Follow a reload: FIFOs whose settings are the same stay open (and
    /// their scripts running), the others are closed and the new ones
    /// opened.
    pub fn reload(&mut self, conf: &Notifications) {
        let mut old = std::mem::take(&mut self.open);
        for f in &conf.fifos {
            match old.iter().position(|o| o.conf == *f) {
                Some(i) => self.open.push(old.swap_remove(i)),
                None => {
                    // A FIFO at the same path is closed (and removed if
                    // made) before it is opened again.
                    old.retain(|o| o.conf.path != f.path);
                    self.open.extend(open_one(f));
                }
            }
        }
    }

    /// Write `line` (with its newline) to each FIFO.
    pub fn write(&mut self, line: &str) {
        for o in &mut self.open {
            match o.file.write(line.as_bytes()) {
                Ok(_) => {}
                // Full: no reader keeps up; the line is lost, as in
                // keepalived.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => log(&format!(
                    "cannot write to {} {}: {e}",
                    o.conf.keyword,
                    o.conf.path.display()
                )),
            }
        }
    }

    /// Whether any FIFO is open.
    pub fn any(&self) -> bool {
        !self.open.is_empty()
    }
}

/// keepalived's `RS` line.
pub fn rs_line(rs: &str, vs: &str, up: bool) -> String {
    format!("RS {rs} {vs} {}\n", if up { "UP" } else { "DOWN" })
}

/// keepalived's `VS` line.
pub fn vs_line(vs: &str, up: bool) -> String {
    format!("VS {vs} {}\n", if up { "UP" } else { "DOWN" })
}

/// A path quoted for `sh -c`.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn open_one(f: &Fifo) -> Option<Open> {
    let kind = if f.keyword == "notify_fifo" {
        ""
    } else {
        "lvs_"
    };
    let mode = rustix::fs::Mode::RUSR
        | rustix::fs::Mode::WUSR
        | rustix::fs::Mode::RGRP
        | rustix::fs::Mode::ROTH;
    let made = match rustix::fs::mknodat(
        rustix::fs::CWD,
        &f.path,
        rustix::fs::FileType::Fifo,
        mode,
        0,
    ) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => {
            log(&format!(
                "Unable to create {kind}notify fifo {}: {e}",
                f.path.display()
            ));
            return None;
        }
    };
    let me = crate::keepalived::conf::RunAs::ourselves();
    if made
        && (f.user.uid != me.uid || f.user.gid != me.gid)
        && let Err(e) = std::os::unix::fs::chown(&f.path, Some(f.user.uid), Some(f.user.gid))
    {
        log(&format!(
            "Failed to set uid:gid for fifo {}: {e}",
            f.path.display()
        ));
    }
    // Its reader first: opening read-write does not wait for one.
    if let Some(s) = &f.script {
        let cmd = format!("{} {}", s.cmd, sh_quote(&f.path));
        let what = format!("{kind}notify fifo script");
        match s
            .user
            .command("/bin/sh", ["-c", &cmd])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(mut child) => {
                std::thread::spawn(move || {
                    let _ = child.wait();
                    log(&format!("{what} terminated"));
                });
            }
            Err(e) => log(&format!("cannot run {what} {}: {e}", s.cmd)),
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(open_flags())
        .open(&f.path);
    let file = match file {
        Ok(file) => file,
        Err(e) => {
            log(&format!(
                "Unable to open {kind}notify fifo {}: {e}",
                f.path.display()
            ));
            if made {
                let _ = std::fs::remove_file(&f.path);
            }
            return None;
        }
    };
    let ours = file
        .metadata()
        .is_ok_and(|m| m.file_type().is_fifo() && (m.uid() == me.uid || m.uid() == f.user.uid));
    if !ours {
        log(&format!(
            "{kind}notify fifo {} is not a fifo we own - not using",
            f.path.display()
        ));
        return None;
    }
    log(&format!("{} {}: open", f.keyword, f.path.display()));
    Some(Open {
        conf: f.clone(),
        file,
        made,
    })
}

/// O_NONBLOCK | O_NOFOLLOW (std opens with O_CLOEXEC).
fn open_flags() -> i32 {
    (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW).bits() as i32
}
