// SPDX-License-Identifier: GPL-2.0-or-later
//! The user a script runs as (keepalived's `user`, `script_user`): names
//! resolved once, when the configuration is loaded (so a reload sees a
//! changed /etc/passwd, and an unknown name is reported with its file and
//! line), and the switch made in the child before it execs the script.

use std::ffi::{CString, OsStr};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Gid, Uid};

/// Who a script runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name as configured (ours: `root` or `uid N`).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// The primary group: the one configured, else the user's.
    pub gid: u32,
    /// The supplementary groups (`setgroups`); keepalived sets the user's
    /// only with `:GROUP` or `set_supplementary_groups`, and otherwise
    /// clears them (empty).
    pub groups: Vec<u32>,
}

impl RunAs {
    /// The checker's own identity (keepalived's default when there is no
    /// `keepalived_script` user), without supplementary groups.
    pub fn ourselves() -> RunAs {
        let uid = rustix::process::getuid().as_raw();
        RunAs {
            name: if uid == 0 {
                "root".into()
            } else {
                format!("uid {uid}")
            },
            uid,
            gid: rustix::process::getgid().as_raw(),
            groups: Vec::new(),
        }
    }

    /// keepalived's `USER [[:]GROUP]`: the user's uid, the group's gid (the
    /// user's primary group when there is none), and with a group written
    /// `:GROUP` (or `:` alone: the user's primary group), or `all_groups`
    /// (`set_supplementary_groups`), the user's supplementary groups.
    /// `Err`: keepalived's message for an unknown user or group.
    pub fn resolve(user: &str, group: Option<&str>, all_groups: bool) -> Result<RunAs, String> {
        let (uid, user_gid) =
            getpwnam(user)?.ok_or_else(|| format!("Script user '{user}' does not exist"))?;
        let (group, all_groups) = match group {
            Some(g) if g.starts_with(':') => (Some(&g[1..]).filter(|g| !g.is_empty()), true),
            g => (g, all_groups),
        };
        let gid = match group {
            Some(g) => getgrnam(g)?.ok_or_else(|| format!("Script group '{g}' does not exist"))?,
            None => user_gid,
        };
        let groups = if all_groups {
            grouplist(user, user_gid)?
        } else {
            Vec::new()
        };
        Ok(RunAs {
            name: user.to_string(),
            uid,
            gid,
            groups,
        })
    }

    /// Whether the script runs with root's powers (uid or gid 0): then
    /// keepalived checks that no other user can change it.
    pub fn is_root(&self) -> bool {
        self.uid == 0 || self.gid == 0
    }

    /// `uid:gid` for messages.
    pub fn ids(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }

    /// A command that runs `prog` with `args` as this user: its child
    /// sets the supplementary groups, the gid, then the uid (each needs
    /// the privilege the last one drops), before exec.
    ///
    /// Without supplementary groups (keepalived's default) that is std's
    /// `CommandExt::gid` and `uid`: `setgid`, `setgroups(0)` (as root),
    /// `setuid` between fork and exec. std's `CommandExt::groups` is not
    /// stable (Rust 1.95), and a `pre_exec` hook would run after std's
    /// `setuid` (too late for a `setgroups`) and be `unsafe` (forbidden
    /// in this crate). So with supplementary groups the child execs rvs
    /// itself (`/proc/self/exe`, the running binary even if its file was
    /// replaced since) as `rvs __exec-as UID GID GROUPS -- PROG ARGS…`
    /// ([`exec_as`]), which sets the three and execs the script in its
    /// place (same pid, same process group).
    ///
    /// A child that cannot switch does not run the script: the spawn
    /// fails with the error (EPERM when rvs is not root), or the helper
    /// exits 1 (a failure for keepalived, with `misc_dynamic` too).
    /// Nothing is switched when the user is rvs itself (root by default
    /// without `keepalived_script`; tests, an unprivileged `rvs health
    /// run`): there is nothing to drop, and std can then start the script
    /// with posix_spawn.
    pub fn command<S: AsRef<OsStr>>(
        &self,
        prog: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Command {
        // rvs itself: nothing to switch (root's supplementary groups
        // give root nothing it does not have; a user other than root could
        // not change them).
        let me = RunAs::ourselves();
        if (me.uid, me.gid) == (self.uid, self.gid)
            && (self.groups.is_empty() || !rustix::process::geteuid().is_root())
        {
            let mut c = Command::new(prog);
            c.args(args);
            return c;
        }
        if self.groups.is_empty() {
            let mut c = Command::new(prog);
            c.args(args).gid(self.gid).uid(self.uid);
            return c;
        }
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        let mut c = Command::new("/proc/self/exe");
        c.arg(EXEC_AS)
            .arg(self.uid.to_string())
            .arg(self.gid.to_string())
            .arg(groups.join(","))
            .arg("--")
            .arg(prog)
            .args(args);
        c
    }
}

/// The hidden command of [`exec_as`].
pub const EXEC_AS: &str = "__exec-as";

/// `rvs __exec-as UID GID G1,G2… -- PROG ARGS…`: set the supplementary
/// groups, the gid and the uid, then exec PROG (searched in PATH as exec
/// does). `main` calls it first thing, while rvs has one thread: rustix's
/// calls are the raw system calls, which change the calling thread's
/// credentials, the process's only while it has one thread. Returns only
/// on failure (why), which `main` turns into exit status 1.
pub fn exec_as(args: &[String]) -> String {
    let usage = || format!("{EXEC_AS}: usage: UID GID G1,G2... -- PROG ARGS...");
    let [uid, gid, groups, dashes, prog, rest @ ..] = args else {
        return usage();
    };
    if dashes != "--" {
        return usage();
    }
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|e| format!("{EXEC_AS}: '{v}': {e}"))
    };
    let ids = (|| -> Result<(Uid, Gid, Vec<Gid>), String> {
        let groups = groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(|g| num(g).map(Gid::from_raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Uid::from_raw(num(uid)?), Gid::from_raw(num(gid)?), groups))
    })();
    let (uid, gid, groups) = match ids {
        Ok(v) => v,
        Err(e) => return e,
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{EXEC_AS}: {what}: {e}");
    if let Err(e) = rustix::thread::set_thread_groups(&groups) {
        return fail("setgroups", &e);
    }
    if let Err(e) = rustix::thread::set_thread_gid(gid) {
        return fail("setgid", &e);
    }
    if let Err(e) = rustix::thread::set_thread_uid(uid) {
        return fail("setuid", &e);
    }
    let e = Command::new(prog).args(rest).exec();
    fail(prog, &e)
}

/// `getpwnam_r` (through NSS): the user's uid and primary gid; `None`:
/// no such user.
fn getpwnam(name: &str) -> Result<Option<(u32, u32)>, String> {
    match nix::unistd::User::from_name(name) {
        Ok(u) => Ok(u.map(|u| (u.uid.as_raw(), u.gid.as_raw()))),
        Err(e) => Err(format!("Unable to resolve script username '{name}': {e}")),
    }
}

/// `getgrnam_r`: the group's gid; `None`: no such group.
fn getgrnam(name: &str) -> Result<Option<u32>, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(g) => Ok(g.map(|g| g.gid.as_raw())),
        Err(e) => Err(format!("Unable to resolve script group name '{name}': {e}")),
    }
}

/// `getgrouplist`: the groups of `name`, `gid` (its primary group) among
/// them.
fn grouplist(name: &str, gid: u32) -> Result<Vec<u32>, String> {
    let cname = CString::new(name).map_err(|_| format!("invalid user name '{name}'"))?;
    nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid))
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .map_err(|e| format!("Unable to get the supplementary groups of '{name}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_groups() {
        let root = RunAs::resolve("root", None, false).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.is_empty());
        assert!(root.is_root());
        let all = RunAs::resolve("root", Some(":"), false).unwrap();
        assert_eq!(all.gid, 0);
        assert!(all.groups.contains(&0), "{all:?}");
        assert_eq!(
            RunAs::resolve("root", None, true).unwrap().groups,
            all.groups
        );
        assert_eq!(
            RunAs::resolve("rvs-no-such-user", None, false),
            Err("Script user 'rvs-no-such-user' does not exist".into())
        );
        assert_eq!(
            RunAs::resolve("root", Some("rvs-no-such-group"), false),
            Err("Script group 'rvs-no-such-group' does not exist".into())
        );
    }

    #[test]
    fn command_switches_only_when_needed() {
        let args = |c: &Command| -> Vec<String> {
            std::iter::once(c.get_program())
                .chain(c.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        // rvs itself: the script as is.
        let c = RunAs::ourselves().command("/bin/x", ["a"]);
        assert_eq!(args(&c), ["/bin/x", "a"]);
        // Supplementary groups: through `rvs __exec-as`.
        let u = RunAs {
            name: "u".into(),
            uid: 7,
            gid: 8,
            groups: vec![8, 9],
        };
        assert_eq!(
            args(&u.command("/bin/x", ["a", "b c"])),
            [
                "/proc/self/exe",
                EXEC_AS,
                "7",
                "8",
                "8,9",
                "--",
                "/bin/x",
                "a",
                "b c"
            ]
        );
        // Without: std's gid and uid (not visible here), the script as is.
        let u = RunAs {
            groups: Vec::new(),
            ..u
        };
        assert_eq!(args(&u.command("/bin/x", ["a"])), ["/bin/x", "a"]);
    }
}
