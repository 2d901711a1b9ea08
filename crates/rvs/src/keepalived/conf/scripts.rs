// SPDX-License-Identifier: GPL-2.0-or-later
//! Who runs the scripts (MISC_CHECK's `misc_path`, `notify_up`,
//! `notify_down`, `quorum_up`, `quorum_down`), as keepalived decides it,
//! and keepalived's check that a script run as root cannot be changed by
//! another user.
//!
//! * A script's own user (`user USER [[:]GROUP]` in MISC_CHECK, `SCRIPT
//!   USER [[:]GROUP]` after a notify script), else `global_defs`'s
//!   `script_user USER [[:]GROUP]`, else the user `keepalived_script` if it
//!   exists, else rvs's own (root; warned once). With
//!   `enable_script_security` there is no falling back to root: without
//!   `keepalived_script` (or with a `script_user` that does not resolve),
//!   the scripts without a user of their own are disabled.
//! * An unknown user or group disables that script, with a warning at its
//!   line (keepalived: a MISC_CHECK is removed, a notify script ignored).
//! * A script that cannot be found (a bare name not in `PATH`, a path that
//!   is not there) or that its user cannot execute is disabled at load,
//!   as keepalived's check_script_secure disables it (its MISC_CHECK
//!   removed, its notify script dropped); `</path` is not a program.
//! * A script run with uid or gid 0 (or set-uid/set-gid root) is checked at
//!   load: every part of its path (`/`, each directory, the file; then the
//!   same for where its symbolic links lead) must be owned by root, and
//!   the directories without the sticky bit and the file writable by
//!   neither a non-root group nor others. An unsafe script is a warning;
//!   with `enable_script_security` it is also disabled. Without
//!   `enable_script_security`, scripts that exist are one warning more
//!   ("SECURITY VIOLATION"), as in keepalived.
//!
//! keepalived reads `set_supplementary_groups` where it stands (before or
//! after `script_user`); here every `global_defs` is read first.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;

/// keepalived's default script user.
const DEFAULT_USER: &str = "keepalived_script";

/// The script settings of `global_defs`.
#[derive(Debug, Default)]
pub(super) struct Scripts {
    /// `script_user`: where, and the user (`None`: it did not resolve).
    script_user: Option<(Pos, Option<RunAs>)>,
    /// `enable_script_security`.
    security: bool,
    /// `set_supplementary_groups`.
    all_groups: bool,
    /// The default user, once asked for (`Some(None)`: there is none).
    default: Option<Option<RunAs>>,
}

/// What the security check found of the scripts.
#[derive(Debug, Default)]
struct Tally {
    /// Scripts that exist.
    scripts: bool,
    /// Unsafe ones.
    insecure: bool,
}

impl Scripts {
    /// Read the script settings of every `global_defs` block.
    pub(super) fn global(tree: &[Node], warnings: &mut Vec<String>) -> Result<Scripts, ConfError> {
        let mut s = Scripts::default();
        let mut user = None;
        for n in tree.iter().filter(|n| n.key == "global_defs") {
            for c in block(n)? {
                match c.key.as_str() {
                    "script_user" => {
                        no_block(c)?;
                        match c.args.as_slice() {
                            [u] => user = Some((c.pos.clone(), u.clone(), None)),
                            [u, g] => user = Some((c.pos.clone(), u.clone(), Some(g.clone()))),
                            [] => return Err(err_at(&c.pos, "'script_user' needs a user name")),
                            _ => {
                                return Err(err_at(
                                    &c.pos,
                                    "'script_user' takes a user and a group",
                                ));
                            }
                        }
                    }
                    "enable_script_security" => s.security = flag(c)?,
                    "set_supplementary_groups" => s.all_groups = flag(c)?,
                    // The rest of global_defs is keepalived's own.
                    _ => {}
                }
            }
        }
        if let Some((pos, u, g)) = user {
            let r = match RunAs::resolve(&u, g.as_deref(), s.all_groups) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(format!(
                        "{pos}: {e}; error setting the global script uid/gid: \
                         scripts without a user of their own are disabled"
                    ));
                    None
                }
            };
            s.script_user = Some((pos, r));
        }
        Ok(s)
    }

    /// The user of a script without one of its own; `None`: there is none
    /// (said once), the script is disabled.
    fn default_user(&mut self, warnings: &mut Vec<String>) -> Option<RunAs> {
        if let Some((_, u)) = &self.script_user {
            return u.clone();
        }
        if let Some(d) = &self.default {
            return d.clone();
        }
        let d = match RunAs::resolve(DEFAULT_USER, None, self.all_groups) {
            Ok(r) => Some(r),
            Err(e) if self.security => {
                warnings.push(format!(
                    "{e}: unable to set the default user {DEFAULT_USER} for scripts \
                     (enable_script_security does not fall back to root; name one with \
                     global_defs' script_user): scripts without a user of their own are disabled"
                ));
                None
            }
            Err(e) => {
                let me = RunAs::ourselves();
                warnings.push(format!(
                    "{e}: scripts without a user of their own run as {} ({}); \
                     set global_defs' script_user",
                    me.name,
                    me.ids()
                ));
                Some(me)
            }
        };
        self.default = Some(d.clone());
        d
    }

    /// The user of a script: `args` (`USER [[:]GROUP]`), else the default.
    /// `Err`: why the script is disabled (the caller says what it drops).
    pub(super) fn user_of(
        &mut self,
        args: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<RunAs, String> {
        match args {
            [] => self
                .default_user(warnings)
                .ok_or_else(|| "no default script user".to_string()),
            [u] => RunAs::resolve(u, None, self.all_groups),
            [u, g, ..] => RunAs::resolve(u, Some(g), self.all_groups),
        }
    }

    /// MISC_CHECK's user (`user`: the `user` line), or `None` with a
    /// warning: the checker is removed.
    pub(super) fn misc_user(
        &mut self,
        n: &Node,
        cmd: &str,
        user: Option<&Node>,
        warnings: &mut Vec<String>,
    ) -> Option<RunAs> {
        let args = user.map_or(&[][..], |u| &u.args[..]);
        match self.user_of(args, warnings) {
            Ok(r) => Some(r),
            Err(e) => {
                let pos = user.map_or(&n.pos, |u| &u.pos);
                warnings.push(format!(
                    "{pos}: {e}; failed to set the uid/gid of misc checker script {cmd} - removing \
                     the MISC_CHECK"
                ));
                None
            }
        }
    }

    /// A notify script line, `SCRIPT [USER [[:]GROUP]]` (`SCRIPT` quoted
    /// when it has arguments); `None` with a warning when its user does not
    /// resolve: the script is ignored.
    pub(super) fn notify(
        &mut self,
        c: &Node,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Notify>, ConfError> {
        no_block(c)?;
        let Some((cmd, user)) = c.args.split_first() else {
            return Err(err_at(&c.pos, format!("'{}' needs a script", c.key)));
        };
        if user.len() > 2 {
            warnings.push(format!(
                "{}: '{}': words after the user and group are ignored (quote a script \
                 with arguments: \"{} ...\")",
                c.pos, c.key, cmd
            ));
        }
        match self.user_of(user, warnings) {
            Ok(user) => Ok(Some(Notify {
                cmd: cmd.clone(),
                user,
                pos: c.pos.clone(),
            })),
            Err(e) => {
                warnings.push(format!(
                    "{}: {e}; invalid user/group for {} script {cmd} - ignoring it",
                    c.pos, c.key
                ));
                Ok(None)
            }
        }
    }

    /// keepalived's `check_script_secure` over every script: unsafe ones
    /// warned about, and disabled with `enable_script_security`; then the
    /// "SECURITY VIOLATION" warning when scripts run without it.
    pub(super) fn secure(
        &self,
        services: &mut [VirtualServer],
        notes: &mut Notifications,
        warnings: &mut Vec<String>,
    ) {
        let mut t = Tally::default();
        for f in &mut notes.fifos {
            if let Some(s) = &f.script
                && !self.keep(&s.cmd, &s.user, &s.pos, false, &mut t, warnings)
            {
                f.script = None;
            }
        }
        for vs in services.iter_mut() {
            for slot in [&mut vs.quorum_up, &mut vs.quorum_down] {
                if let Some(s) = slot
                    && !self.keep(&s.cmd, &s.user, &s.pos, false, &mut t, warnings)
                {
                    *slot = None;
                }
            }
            for rs in &mut vs.reals {
                for slot in [&mut rs.notify_up, &mut rs.notify_down] {
                    if let Some(s) = slot
                        && !self.keep(&s.cmd, &s.user, &s.pos, false, &mut t, warnings)
                    {
                        *slot = None;
                    }
                }
                rs.checkers.retain(|ck| match &ck.kind {
                    CheckKind::Misc { path, user, .. } => {
                        self.keep(path, user, &ck.pos, true, &mut t, warnings)
                    }
                    _ => true,
                });
            }
        }
        if t.scripts && !self.security {
            warnings.push(format!(
                "SECURITY VIOLATION - check scripts are being executed but script_security not \
                 enabled (global_defs' enable_script_security).{}",
                if t.insecure {
                    " There are insecure scripts."
                } else {
                    ""
                }
            ));
        }
    }

    /// Whether the script `cmd` (its first word is the program) may run as
    /// `user`.
    fn keep(
        &self,
        cmd: &str,
        user: &RunAs,
        pos: &Pos,
        misc: bool,
        t: &mut Tally,
        warnings: &mut Vec<String>,
    ) -> bool {
        let Some(prog) = cmd.split_whitespace().next() else {
            return true;
        };
        // keepalived's `</path`: whether a file can be opened, not a
        // program.
        if let Some(rest) = prog.strip_prefix('<')
            && rest.trim_start().starts_with('/')
        {
            return true;
        }
        // keepalived's check_script_secure: a script that cannot be found,
        // or that its user cannot execute, is disabled at load.
        let misc = if misc {
            format!("; Disabling misc script {cmd} since not found/accessible")
        } else {
            String::new()
        };
        let Some(path) = find(prog) else {
            warnings.push(format!(
                "{pos}: Cannot find script {prog} in path - disabling{misc}"
            ));
            return false;
        };
        let meta =
            std::fs::canonicalize(&path).and_then(|real| Ok((std::fs::metadata(&real)?, real)));
        let (meta, real) = match meta {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!(
                    "{pos}: Script {prog} cannot be accessed - {e}{misc}"
                ));
                return false;
            }
        };
        if !executable(&meta, user) {
            warnings.push(format!(
                "{pos}: WARNING - script '{prog}' is not executable for uid:gid {}:{} - disabling.",
                user.uid, user.gid
            ));
            return false;
        }
        t.scripts = true;
        let mode = meta.mode();
        let setid_root = (meta.uid() == 0 && mode & 0o4100 == 0o4100)
            || (meta.gid() == 0 && mode & 0o2010 == 0o2010);
        if !user.is_root() && !setid_root {
            return true;
        }
        let mut found = unsafe_part(&path);
        if found.is_none() && real != path {
            found = unsafe_part(&real);
        }
        let Some((why, always)) = found else {
            return true;
        };
        t.insecure = true;
        let disable = self.security || always;
        warnings.push(format!(
            "{pos}: Unsafe permissions found for script '{prog}' run as {} ({}): {why}{}",
            user.name,
            user.ids(),
            if disable {
                " - disabling"
            } else {
                " (enable_script_security would disable it)"
            }
        ));
        !disable
    }
}

/// keepalived's `is_executable`: root needs any execute bit; the owner
/// the owner's; anyone else the group's or the others' bit, as their
/// group is the file's or not.
fn executable(m: &std::fs::Metadata, user: &RunAs) -> bool {
    let mode = m.mode();
    if user.uid == 0 {
        mode & 0o111 != 0
    } else if user.uid == m.uid() {
        mode & 0o100 != 0
    } else if user.gid == m.gid() {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The file `prog` names: a path (made absolute), or a bare name searched
/// in `PATH` as exec does.
fn find(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return std::path::absolute(prog).ok();
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// keepalived's rule, on each part of `path` from `/` to the file (not
/// following symbolic links): owned by root, and (for a directory without
/// the sticky bit, or the file) not writable by a group other than root's
/// nor by others. The first offence, and whether it disables the script
/// even without `enable_script_security` (a part that is not what it
/// should be, or cannot be looked at).
fn unsafe_part(path: &Path) -> Option<(String, bool)> {
    let mut part = PathBuf::new();
    let mut parts = path.components().peekable();
    while let Some(c) = parts.next() {
        part.push(c);
        let last = parts.peek().is_none();
        let m = match std::fs::symlink_metadata(&part) {
            Ok(m) => m,
            Err(e) => return Some((format!("{}: {e}", part.display()), true)),
        };
        let ft = m.file_type();
        // keepalived wants a directory before the end and a file or a
        // symbolic link at the end; a link to a directory (merged /usr's
        // /bin) is accepted here too: its target is checked as the real
        // path.
        let right_type = if last {
            ft.is_file() || ft.is_symlink()
        } else {
            ft.is_dir() || ft.is_symlink()
        };
        if !right_type {
            return Some((
                format!("wrong file type found in script path at {}", part.display()),
                true,
            ));
        }
        let mode = m.mode();
        let shown = part.display();
        if m.uid() != 0 {
            return Some((format!("{shown} is owned by uid {}", m.uid()), false));
        }
        if (ft.is_dir() && mode & 0o1000 == 0) || ft.is_file() {
            if m.gid() != 0 && mode & 0o020 != 0 {
                return Some((format!("{shown} is writable by group {}", m.gid()), false));
            }
            if mode & 0o002 != 0 {
                return Some((format!("{shown} is writable by others"), false));
            }
        }
    }
    None
}
