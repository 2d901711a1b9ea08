//! Who may talk to rvsd.
//!
//! Like the kernel — which requires CAP_NET_ADMIN for every IPVS command,
//! listings included (`GENL_ADMIN_PERM`) — rvsd serves a peer only if it is
//! privileged; anyone else gets EPERM ("Permission denied (you must be
//! root)") for every request, read-only ones too, and nothing changes.
//!
//! A peer is privileged when, per `SO_PEERCRED` and `/proc/<pid>/status`:
//! * its effective uid is 0, or
//! * CAP_NET_ADMIN (bit 12) is in its effective capability set, or
//! * its uid is the daemon's own effective uid: such a process can already
//!   signal, trace or replace the daemon, so refusing it would protect
//!   nothing (this lets an unprivileged developer run and drive a private
//!   rvsd; with rvsd running as root it adds no one).
//!
//! The capability set is read when the connection is accepted, and only
//! trusted if `/proc/<pid>/status` still shows the uid `SO_PEERCRED`
//! reported, which guards against the peer's pid having been reused.

use std::os::fd::AsFd;

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

impl Peer {
    /// rvsd itself (loading `--rules`).
    pub fn internal() -> Peer {
        Peer {
            uid: rustix::process::geteuid().as_raw(),
            pid: rustix::process::getpid().as_raw_nonzero().get(),
            privileged: true,
        }
    }

    /// The peer of a connected Unix stream.
    pub fn of(stream: impl AsFd) -> Peer {
        let Ok(cred) = rustix::net::sockopt::socket_peercred(stream) else {
            return Peer {
                uid: u32::MAX,
                pid: 0,
                privileged: false,
            };
        };
        let uid = cred.uid.as_raw();
        let pid = rustix::process::Pid::as_raw(Some(cred.pid));
        let status = if pid > 0 {
            std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
        } else {
            None
        };
        let cap_eff = status.as_deref().and_then(|s| {
            let (cap, euid) = parse_status(s);
            // Trust the capabilities only if the pid still belongs to the peer's user.
            cap.filter(|_| euid == Some(uid))
        });
        Peer {
            uid,
            pid,
            privileged: is_privileged(uid, cap_eff, rustix::process::geteuid().as_raw()),
        }
    }
}

/// The access rule: uid 0, CAP_NET_ADMIN in the effective set, or the
/// daemon's own uid.
pub fn is_privileged(uid: u32, cap_eff: Option<u64>, daemon_uid: u32) -> bool {
    uid == 0 || uid == daemon_uid || cap_eff.is_some_and(|c| c & (1u64 << CAP_NET_ADMIN) != 0)
}

/// `CapEff` and the effective uid from the text of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> (Option<u64>, Option<u32>) {
    let mut cap = None;
    let mut euid = None;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("CapEff:") {
            cap = u64::from_str_radix(v.trim(), 16).ok();
        } else if let Some(v) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem
            euid = v.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        }
    }
    (cap, euid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        let daemon = 0;
        assert!(is_privileged(0, None, daemon));
        assert!(is_privileged(1000, Some(1 << 12), daemon));
        assert!(is_privileged(1000, Some(0x1fffeffffff), daemon));
        assert!(!is_privileged(1000, Some(0), daemon));
        assert!(!is_privileged(1000, Some(!(1 << 12)), daemon));
        assert!(!is_privileged(1000, None, daemon));
        // The daemon's own user.
        assert!(is_privileged(1000, None, 1000));
        assert!(!is_privileged(1001, Some(0), 1000));
    }

    #[test]
    fn status_parsing() {
        let s = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\n\
                 Uid:\t1000\t1001\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
                 CapInh:\t0000000000000000\nCapPrm:\t0000000000001000\n\
                 CapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(parse_status(s), (Some(0x1000), Some(1001)));
        assert_eq!(parse_status("garbage"), (None, None));
    }

    #[test]
    fn own_status_parses() {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let (cap, euid) = parse_status(&s);
        assert!(cap.is_some());
        assert_eq!(euid, Some(rustix::process::geteuid().as_raw()));
    }
}
