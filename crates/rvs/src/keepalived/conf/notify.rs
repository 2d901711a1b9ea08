// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's notification FIFOs, as its checker reads them from
//! `global_defs` (global_parser.c `notify_fifo`, `notify_fifo_script`):
//!
//! * `notify_fifo PATH [USER [GROUP]]` (shared with the VRRP process) and
//!   `lvs_notify_fifo PATH [USER [GROUP]]` (the checker's own): a FIFO the
//!   checker writes a line to at each change of a real server (`RS …`) or
//!   of a virtual server's quorum (`VS …`). The user (else the default
//!   script user) is who may own the FIFO and is given a FIFO the checker
//!   creates.
//! * `notify_fifo_script SCRIPT [USER [GROUP]]`, `lvs_notify_fifo_script`:
//!   a program started once the FIFO exists, with its path as one more
//!   argument, to read it.
//! * `rs_init_notifies`: the real servers alive at the start are
//!   notified (scripts and FIFOs) as if they had just come up.
//!
//! A second `notify_fifo` (or script) is ignored with keepalived's
//! warning; a user that does not resolve ignores the FIFO, with its line.
//! `vrrp_notify_fifo` is the VRRP process's (ignored here).

use std::path::PathBuf;

use super::*;
use crate::keepalived::lex::{ConfError, Node};

/// One FIFO to write notifications to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fifo {
    /// `notify_fifo` or `lvs_notify_fifo` (for log lines).
    pub keyword: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Who may own it, and whom a FIFO the checker creates is given to.
    pub user: RunAs,
    /// The program that reads it (the FIFO's path is appended).
    pub script: Option<Notify>,
}

/// `global_defs`'s notification settings of the checker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// `notify_fifo`, then `lvs_notify_fifo` (each at most once).
    pub fifos: Vec<Fifo>,
    /// `rs_init_notifies`.
    pub rs_init: bool,
}

/// Read the notification settings of every `global_defs` block.
pub(super) fn global(
    tree: &[Node],
    scripts: &mut Scripts,
    warnings: &mut Vec<String>,
) -> Result<Notifications, ConfError> {
    let mut out = Notifications::default();
    // [notify_fifo, lvs_notify_fifo]: (path, user), script.
    let mut paths: [Option<(PathBuf, RunAs)>; 2] = [None, None];
    let mut progs: [Option<Notify>; 2] = [None, None];
    const KEYS: [&str; 2] = ["notify_fifo", "lvs_notify_fifo"];
    for n in tree.iter().filter(|n| n.key == "global_defs") {
        for c in block(n)? {
            let (i, script) = match c.key.as_str() {
                "notify_fifo" => (0, false),
                "lvs_notify_fifo" => (1, false),
                "notify_fifo_script" => (0, true),
                "lvs_notify_fifo_script" => (1, true),
                "rs_init_notifies" => {
                    out.rs_init = flag(c)?;
                    continue;
                }
                _ => continue,
            };
            no_block(c)?;
            let key = KEYS[i];
            if script {
                if c.args.is_empty() {
                    warnings.push(format!("{}: No {key}_script specified", c.pos));
                } else if progs[i].is_some() {
                    warnings.push(format!(
                        "{}: {key}_script already specified - ignoring {}",
                        c.pos, c.args[0]
                    ));
                } else {
                    progs[i] = scripts.notify(c, warnings)?;
                }
                continue;
            }
            let Some((path, user)) = c.args.split_first() else {
                warnings.push(format!("{}: No {key} name specified", c.pos));
                continue;
            };
            if paths[i].is_some() {
                warnings.push(format!(
                    "{}: {key} already specified - ignoring {path}",
                    c.pos
                ));
                continue;
            }
            match scripts.user_of(user, warnings) {
                Ok(u) => paths[i] = Some((PathBuf::from(path), u)),
                Err(e) => warnings.push(format!(
                    "{}: {e}; invalid user/group for {key} {path} - ignoring",
                    c.pos
                )),
            }
        }
    }
    for (i, (p, s)) in paths.into_iter().zip(progs).enumerate() {
        match (p, s) {
            (Some((path, user)), script) => out.fifos.push(Fifo {
                keyword: KEYS[i],
                path,
                user,
                script,
            }),
            (None, Some(s)) => warnings.push(format!(
                "{}: {}_script without {}: ignored",
                s.pos, KEYS[i], KEYS[i]
            )),
            (None, None) => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(global: &str) -> (Config, Vec<String>) {
        let text = format!(
            "global_defs {{\n script_user nobody\n{global}}}\n\
             virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  TCP_CHECK {{ }}\n }}\n}}\n"
        );
        let mut w = Vec::new();
        let t =
            crate::keepalived::lex::parse_text(&text, "k.conf", Path::new("/x"), &mut w).unwrap();
        let c = build(&t, &mut w).unwrap();
        (c, w)
    }

    #[test]
    fn fifos_their_users_and_scripts() {
        let nobody = RunAs::resolve("nobody", None, false).unwrap();
        let (c, w) = parse(
            " notify_fifo /run/n.fifo\n lvs_notify_fifo /run/l.fifo root\n \
             lvs_notify_fifo_script \"/bin/cat -u\" root\n rs_init_notifies\n \
             vrrp_notify_fifo /run/v.fifo\n",
        );
        assert!(
            w.iter().all(|w| w.starts_with("SECURITY VIOLATION")),
            "{w:?}"
        );
        let n = &c.notify;
        assert!(n.rs_init);
        assert_eq!(n.fifos.len(), 2, "vrrp_notify_fifo is VRRP's");
        assert_eq!(
            (n.fifos[0].keyword, n.fifos[0].path.as_path()),
            ("notify_fifo", Path::new("/run/n.fifo"))
        );
        assert_eq!(n.fifos[0].user, nobody, "script_user's");
        assert!(n.fifos[0].script.is_none());
        assert_eq!(n.fifos[1].keyword, "lvs_notify_fifo");
        assert_eq!(n.fifos[1].user.name, "root");
        let s = n.fifos[1].script.as_ref().unwrap();
        assert_eq!(
            (s.cmd.as_str(), s.user.name.as_str()),
            ("/bin/cat -u", "root")
        );
    }

    /// keepalived's warnings: a second one ignored, a missing name, a
    /// user that does not exist (the FIFO ignored), a script without its
    /// FIFO; none of them refuses the file.
    #[test]
    fn bad_fifo_lines_are_warned_about() {
        let (c, w) = parse(
            " notify_fifo /run/a\n notify_fifo /run/b\n lvs_notify_fifo\n \
             notify_fifo_script /bin/cat\n notify_fifo_script /bin/true\n \
             lvs_notify_fifo_script /bin/cat\n",
        );
        assert_eq!(c.notify.fifos.len(), 1);
        assert_eq!(c.notify.fifos[0].path, Path::new("/run/a"));
        assert_eq!(c.notify.fifos[0].script.as_ref().unwrap().cmd, "/bin/cat");
        assert_eq!(
            &w[..4],
            [
                "k.conf:4: notify_fifo already specified - ignoring /run/b",
                "k.conf:5: No lvs_notify_fifo name specified",
                "k.conf:7: notify_fifo_script already specified - ignoring /bin/true",
                "k.conf:8: lvs_notify_fifo_script without lvs_notify_fifo: ignored",
            ],
            "{w:?}"
        );
        let (c, w) = parse(" lvs_notify_fifo /run/a rvs-no-such-user\n");
        assert!(c.notify.fifos.is_empty());
        assert_eq!(
            w,
            [
                "k.conf:3: Script user 'rvs-no-such-user' does not exist; invalid user/group \
                 for lvs_notify_fifo /run/a - ignoring"
            ]
        );
        // A block where a line belongs is a syntax error.
        let mut w = Vec::new();
        let t = crate::keepalived::lex::parse_text(
            "global_defs {\n notify_fifo /run/a {\n x\n }\n}\n",
            "k.conf",
            Path::new("/x"),
            &mut w,
        )
        .unwrap();
        assert!(build(&t, &mut w).is_err());
    }
}
