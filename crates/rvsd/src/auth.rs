//! Who may talk to rvsd.
//!
//! Like the kernel — which requires CAP_NET_ADMIN for every IPVS command,
//! listings included (`GENL_ADMIN_PERM`) — rvsd serves a peer only if it is
//! privileged; anyone else gets EPERM ("Permission denied (you must be
//! root)") for every request, read-only ones too, and nothing changes.
//!
//! # The rule
//!
//! A peer is privileged when
//! 1. its uid is 0, or
//! 2. its uid is the daemon's own effective uid (such a process can already
//!    signal, trace or replace the daemon, so refusing it would protect
//!    nothing; this lets a developer drive a private, unprivileged rvsd;
//!    with rvsd running as root it adds no one), or
//! 3. `rvsd --group NAME` is given and the peer's group (at connect time)
//!    or one of its supplementary groups is that group, or
//! 4. it holds CAP_NET_ADMIN in its effective set **in rvsd's own user
//!    namespace**: a capability held in a child user namespace
//!    (`unshare -Ur`) is worth nothing here, exactly as the kernel's own
//!    `ns_capable(net->user_ns, CAP_NET_ADMIN)` refuses it.
//!
//! # The evidence
//!
//! * uid, gid and pid come from `SO_PEERCRED`: the kernel records them when
//!   the peer calls connect(2), translated into rvsd's user and pid
//!   namespaces, and no later change (setuid, exec, a new user namespace)
//!   alters them. A process inside `unshare -Ur` that calls itself root is
//!   seen with its real uid (e.g. 65534). Rules 1–3 (primary group) rest on
//!   these.
//! * Capabilities and supplementary groups are not in `SO_PEERCRED`, so rvsd
//!   also looks at the peer process, pinned first so that its pid cannot be
//!   recycled under the check:
//!   1. the time since boot is noted, then a pidfd is opened for the pid;
//!      from then on the pid cannot name another process while the pidfd
//!      says the process lives;
//!   2. `/proc/PID/stat`: the process must have started before step 1 — a
//!      process started later cannot be the one that connected (the pid was
//!      reused between connect and the pidfd);
//!   3. `/proc/PID/status`: its effective uid must still be the one
//!      `SO_PEERCRED` recorded; `CapEff` and `Groups` are read;
//!   4. `/proc/PID/ns/user` must be the same namespace (device and inode) as
//!      `/proc/self/ns/user`, else its capabilities do not count;
//!   5. the pidfd must still be alive after the reads: if the process had
//!      exited meanwhile, what was read may belong to a successor, and the
//!      peer is refused.
//!
//!   Steps 3–5 are repeated before every request ([`Pin::still_privileged`]):
//!   the process that connected must still be alive, have the effective uid
//!   it connected with, and still satisfy the rule. A root process that
//!   connects and then execs an unprivileged program with the connection
//!   (`setpriv --reuid=nobody ...`) is refused from then on.
//! * A peer whose pid rvsd cannot see (another pid namespace: pid 0) is
//!   judged by rules 1–3 on `SO_PEERCRED` alone.
//!
//! What this does not cover: a peer that connects without CAP_NET_ADMIN and
//! then, before rvsd's check (microseconds), execs a program that carries
//! CAP_NET_ADMIN as a file capability (`setcap cap_net_admin+ep`) would be
//! counted privileged; a host that installs such a program has granted the
//! capability to whoever may run it anyway. A privileged process that
//! connects, forks, and lets an unprivileged child use the connection while
//! it stays alive and privileged itself is served: rvsd cannot tell who of
//! the two wrote a request (the kernel, likewise, judges netlink senders by
//! the credentials the socket was opened with).
//!
//! rvsd reads other users' `/proc/PID/ns/user` only as root; an rvsd running
//! as another user therefore never grants rule 4.

use std::os::fd::{AsFd, OwnedFd};

/// Capability number of CAP_NET_ADMIN.
pub const CAP_NET_ADMIN: u32 = 12;

/// Credentials of a control connection's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid at connect time.
    pub uid: u32,
    /// Process id (0 if not visible from rvsd's pid namespace).
    pub pid: i32,
    /// Whether the peer may use the control API.
    pub privileged: bool,
}

/// Who besides root may use the control API, and what rvsd compares a
/// peer's user namespace with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The daemon's effective uid (rule 2).
    pub daemon_uid: u32,
    /// `--group` (rule 3).
    pub group: Option<u32>,
    /// Device and inode of rvsd's user namespace (rule 4; `None`: unknown,
    /// and rule 4 never applies).
    pub userns: Option<(u64, u64)>,
}

impl Policy {
    /// The policy of this process, with `--group` resolved to `group`.
    pub fn current(group: Option<u32>) -> Policy {
        Policy {
            daemon_uid: rustix::process::geteuid().as_raw(),
            group,
            userns: ns_id("/proc/self/ns/user"),
        }
    }
}

/// What rvsd learnt about the peer process from `/proc` (see the module
/// documentation), valid only if every check passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcFacts {
    /// Effective uid now.
    pub euid: Option<u32>,
    /// `CapEff`.
    pub cap_eff: Option<u64>,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Same user namespace as rvsd.
    pub same_userns: bool,
}

/// The access rule (see the module documentation): `uid`/`gid` from
/// `SO_PEERCRED`, `proc` what the pinned peer process showed (`None` if it
/// could not be read or a check failed).
pub fn is_privileged(uid: u32, gid: u32, proc: Option<&ProcFacts>, policy: &Policy) -> bool {
    if uid == 0 || uid == policy.daemon_uid {
        return true;
    }
    if policy.group == Some(gid) {
        return true;
    }
    let Some(p) = proc else {
        return false;
    };
    if p.euid != Some(uid) {
        return false;
    }
    if let Some(g) = policy.group
        && p.groups.contains(&g)
    {
        return true;
    }
    p.same_userns && p.cap_eff.is_some_and(|c| c & (1u64 << CAP_NET_ADMIN) != 0)
}

impl Peer {
    /// rvsd itself (loading `--rules`).
    pub fn internal() -> Peer {
        Peer {
            uid: rustix::process::geteuid().as_raw(),
            pid: rustix::process::getpid().as_raw_nonzero().get(),
            privileged: true,
        }
    }

    /// The peer of a connected Unix stream, judged by `policy`, and the
    /// peer process pinned (if its pid is visible) for [`Pin::still_privileged`].
    pub fn authenticate(stream: impl AsFd, policy: &Policy) -> (Peer, Option<Pin>) {
        let Ok(cred) = rustix::net::sockopt::socket_peercred(stream) else {
            let nobody = Peer {
                uid: u32::MAX,
                pid: 0,
                privileged: false,
            };
            return (nobody, None);
        };
        let uid = cred.uid.as_raw();
        let gid = cred.gid.as_raw();
        let pid = rustix::process::Pid::as_raw(Some(cred.pid));
        let pin = if pid > 0 {
            Pin::new(pid, uid, gid)
        } else {
            None
        };
        let privileged = match &pin {
            Some(p) => p.still_privileged(policy),
            // Not visible from here (another pid namespace), or gone, or
            // the pid already reused: credentials alone, and only for a
            // peer whose pid rvsd cannot see.
            None => pid <= 0 && is_privileged(uid, gid, None, policy),
        };
        (
            Peer {
                uid,
                pid,
                privileged,
            },
            pin,
        )
    }
}

/// The process that connected, pinned by a pidfd (steps 1 and 2 of the
/// module documentation), with the credentials `SO_PEERCRED` gave.
#[derive(Debug)]
pub struct Pin {
    pidfd: OwnedFd,
    pid: i32,
    uid: u32,
    gid: u32,
}

impl Pin {
    /// Pin `pid`, unless it started after now (then it is not the process
    /// that connected) or cannot be pinned.
    fn new(pid: i32, uid: u32, gid: u32) -> Option<Pin> {
        let before = uptime_ticks()?;
        let raw = rustix::process::Pid::from_raw(pid)?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        if parse_start_time(&stat)? > before {
            return None;
        }
        Some(Pin {
            pidfd,
            pid,
            uid,
            gid,
        })
    }

    /// Whether the process that connected is alive and privileged now,
    /// with its effective uid still the one it connected with. rvsd asks
    /// before every request: a process that connected as root and then
    /// became another user (say `setpriv --reuid=nobody` exec'd with the
    /// connection) is refused from then on, and so is a connection whose
    /// process has exited (whoever holds it now is unknown).
    pub fn still_privileged(&self, policy: &Policy) -> bool {
        inspect(self, policy).is_some_and(|f| {
            f.euid == Some(self.uid) && is_privileged(self.uid, self.gid, Some(&f), policy)
        })
    }
}

/// Steps 3–5 of the module documentation; `None` if any fails.
fn inspect(pin: &Pin, policy: &Policy) -> Option<ProcFacts> {
    let pid = pin.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (cap_eff, euid, groups) = parse_status(&status);
    let theirs = ns_id(&format!("/proc/{pid}/ns/user"));
    let same_userns = policy.userns.is_some() && theirs == policy.userns;
    if exited(&pin.pidfd) {
        return None;
    }
    Some(ProcFacts {
        euid,
        cap_eff,
        groups,
        same_userns,
    })
}

/// Whether the process of `pidfd` has exited (a pidfd polls readable then).
fn exited(pidfd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    !matches!(poll(&mut fds, Some(&zero)), Ok(0))
}

/// Device and inode of a namespace file.
fn ns_id(path: &str) -> Option<(u64, u64)> {
    let st = rustix::fs::stat(path).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// Clock ticks (USER_HZ, 100 on Linux) since boot, rounded up, as
/// `/proc/PID/stat`'s start time counts them.
fn uptime_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    parse_uptime_ticks(&s)
}

/// `/proc/uptime`'s first field (seconds with two decimals) in ticks,
/// rounded up.
pub fn parse_uptime_ticks(s: &str) -> Option<u64> {
    let first = s.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let secs: u64 = secs.parse().ok()?;
    let mut centis = 0u64;
    let mut digits = frac.chars();
    for scale in [10, 1] {
        centis += scale * u64::from(digits.next().and_then(|c| c.to_digit(10)).unwrap_or(0));
    }
    let rest_nonzero = digits.any(|c| c != '0');
    Some(secs * 100 + centis + u64::from(rest_nonzero))
}

/// The start time (field 22, ticks since boot) from `/proc/PID/stat`; the
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: 22 - 3 = 19.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// `CapEff`, the effective uid and the supplementary groups from the text
/// of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> (Option<u64>, Option<u32>, Vec<u32>) {
    let mut cap = None;
    let mut euid = None;
    let mut groups = Vec::new();
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("CapEff:") {
            cap = u64::from_str_radix(v.trim(), 16).ok();
        } else if let Some(v) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem
            euid = v.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        } else if let Some(v) = line.strip_prefix("Groups:") {
            groups = v
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
        }
    }
    (cap, euid, groups)
}

/// `--group NAME|GID`: a number, else the group of that name in
/// `/etc/group` (`group_file`'s text).
pub fn resolve_group(name: &str, group_file: &str) -> Option<u32> {
    if let Ok(g) = name.parse() {
        return Some(g);
    }
    group_file.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(daemon_uid: u32, group: Option<u32>) -> Policy {
        Policy {
            daemon_uid,
            group,
            userns: Some((4, 4026531837)),
        }
    }

    fn facts(euid: u32, cap: u64, groups: &[u32], same_userns: bool) -> ProcFacts {
        ProcFacts {
            euid: Some(euid),
            cap_eff: Some(cap),
            groups: groups.to_vec(),
            same_userns,
        }
    }

    #[test]
    fn rule() {
        let p = policy(0, None);
        assert!(is_privileged(0, 0, None, &p));
        assert!(!is_privileged(1000, 1000, None, &p));
        // CAP_NET_ADMIN counts only in rvsd's user namespace, and only for
        // the uid that connected.
        let admin = 1 << CAP_NET_ADMIN;
        assert!(is_privileged(
            1000,
            1000,
            Some(&facts(1000, admin, &[], true)),
            &p
        ));
        assert!(is_privileged(
            1000,
            1000,
            Some(&facts(1000, 0x1ff_ffff_ffff, &[], true)),
            &p
        ));
        assert!(!is_privileged(
            1000,
            1000,
            Some(&facts(1000, 0x1ff_ffff_ffff, &[], false)),
            &p
        ));
        assert!(!is_privileged(
            1000,
            1000,
            Some(&facts(1000, !admin, &[], true)),
            &p
        ));
        assert!(!is_privileged(
            1000,
            1000,
            Some(&facts(0, admin, &[], true)),
            &p
        ));
        // The daemon's own user.
        assert!(is_privileged(1000, 1000, None, &policy(1000, None)));
        assert!(!is_privileged(
            1001,
            1001,
            Some(&facts(1001, 0, &[], true)),
            &policy(1000, None)
        ));
        // --group: primary group at connect time, or a supplementary one.
        let g = policy(0, Some(42));
        assert!(is_privileged(1000, 42, None, &g));
        assert!(is_privileged(
            1000,
            1000,
            Some(&facts(1000, 0, &[7, 42], false)),
            &g
        ));
        assert!(!is_privileged(
            1000,
            1000,
            Some(&facts(1000, 0, &[7], true)),
            &g
        ));
        assert!(!is_privileged(
            1000,
            1000,
            Some(&facts(1001, 0, &[42], true)),
            &g
        ));
    }

    #[test]
    fn status_parsing() {
        let s = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\n\
                 Uid:\t1000\t1001\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
                 Groups:\t4 24 27 \n\
                 CapInh:\t0000000000000000\nCapPrm:\t0000000000001000\n\
                 CapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(parse_status(s), (Some(0x1000), Some(1001), vec![4, 24, 27]));
        assert_eq!(parse_status("garbage"), (None, None, vec![]));
    }

    #[test]
    fn stat_and_uptime_parsing() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                    1 0 98765 1000000 100 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(98765));
        assert_eq!(parse_start_time("1 (x) S 1"), None);
        assert_eq!(parse_uptime_ticks("12.34 40.00\n"), Some(1234));
        assert_eq!(parse_uptime_ticks("12.345 40.00\n"), Some(1235));
        assert_eq!(parse_uptime_ticks("7 1\n"), Some(700));
        assert_eq!(parse_uptime_ticks(""), None);
    }

    #[test]
    fn own_process_inspects() {
        let p = Policy::current(None);
        assert!(p.userns.is_some());
        let me = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let pin = Pin::new(std::process::id() as i32, me, gid).expect("pin self");
        let f = inspect(&pin, &p).expect("inspect self");
        assert_eq!(f.euid, Some(me));
        assert!(f.same_userns);
        // rvsd's own uid.
        assert!(pin.still_privileged(&p));
        // Connected as another uid: not the same process any more.
        let other = Pin::new(std::process::id() as i32, me + 1, gid).unwrap();
        assert!(!other.still_privileged(&Policy {
            daemon_uid: me + 1,
            ..p.clone()
        }));
    }

    #[test]
    fn groups_resolve() {
        let file = "root:x:0:\nadm:x:4:syslog\nrvs:x:990:alice,bob\n";
        assert_eq!(resolve_group("rvs", file), Some(990));
        assert_eq!(resolve_group("adm", file), Some(4));
        assert_eq!(resolve_group("123", file), Some(123));
        assert_eq!(resolve_group("nope", file), None);
    }
}
