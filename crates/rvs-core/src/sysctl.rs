//! The IPVS sysctls by their kernel names (`/proc/sys/net/ipv4/vs/*`,
//! `sysctl net.ipv4.vs.NAME`), with the kernel's defaults (reference
//! §5.10), and which of them rvs applies.
//!
//! Those that change the packet path of this engine ([`Sysctls`]) can be
//! read and set. The others are listed with the kernel's default so that
//! a `sysctl -p` file written for a kernel director loads: setting one to
//! its default is accepted, any other value is refused with the reason
//! (rvs does not implement it, or the equivalent is elsewhere), and
//! nothing of the file is applied.

use crate::engine::Sysctls;

/// One IPVS sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlInfo {
    /// The kernel's name (the last part of `net.ipv4.vs.NAME`).
    pub name: &'static str,
    /// The kernel's default, as `sysctl` prints it.
    pub default: &'static str,
    /// Whether rvs applies it (else only its default is accepted).
    pub applies: bool,
    /// Why not, for those rvs does not apply.
    pub note: &'static str,
}

const fn applied(name: &'static str, default: &'static str) -> SysctlInfo {
    SysctlInfo {
        name,
        default,
        applies: true,
        note: "",
    }
}

const fn not_applied(name: &'static str, default: &'static str, note: &'static str) -> SysctlInfo {
    SysctlInfo {
        name,
        default,
        applies: false,
        note,
    }
}

/// Why `sync_ports` is fixed: one sync socket per daemon.
const SYNC_PORTS_NOTE: &str = "rvs runs one sync socket per daemon (port mcast-port only)";

/// Every IPVS sysctl of the kernel, in `sysctl -a` order (by name).
pub const SYSCTLS: &[SysctlInfo] = &[
    not_applied(
        "am_droprate",
        "10",
        "the memory defences are not implemented",
    ),
    not_applied(
        "amemthresh",
        "1024",
        "the memory defences are not implemented",
    ),
    applied("backup_only", "0"),
    not_applied("cache_bypass", "0", "not implemented"),
    applied("conn_reuse_mode", "1"),
    not_applied(
        "conntrack",
        "0",
        "rvs forwards before netfilter: no conntrack entries",
    ),
    not_applied("drop_entry", "0", "the memory defences are not implemented"),
    not_applied(
        "drop_packet",
        "0",
        "the memory defences are not implemented",
    ),
    not_applied(
        "est_nice",
        "0",
        "rvs estimates rates on its housekeeping thread",
    ),
    applied("expire_nodest_conn", "0"),
    applied("expire_quiescent_template", "0"),
    not_applied("ignore_tunneled", "0", "not implemented"),
    not_applied("lblc_expiration", "86400", "fixed at the kernel's default"),
    not_applied("lblcr_expiration", "86400", "fixed at the kernel's default"),
    not_applied("nat_icmp_send", "0", "not implemented"),
    not_applied(
        "pmtu_disc",
        "1",
        "rvs always does path MTU discovery for tunnels",
    ),
    not_applied("run_estimation", "1", "rates are always estimated"),
    not_applied("schedule_icmp", "0", "not implemented"),
    not_applied("secure_tcp", "0", "the memory defences are not implemented"),
    applied("sloppy_sctp", "0"),
    applied("sloppy_tcp", "0"),
    not_applied(
        "snat_reroute",
        "1",
        "NAT replies are always routed by the director",
    ),
    applied("sync_persist_mode", "0"),
    not_applied("sync_ports", "1", SYNC_PORTS_NOTE),
    // The kernel's default is nr_free_buffer_pages() / 32, which depends on
    // the host's memory (16384 on a host with 2 GiB of low memory). rvs
    // defaults to that value: at most 16384 messages' worth of queued
    // entries (40 to a 1472-byte message) per master.
    applied("sync_qlen_max", "16384"),
    applied("sync_refresh_period", "0"),
    applied("sync_retries", "0"),
    applied("sync_sock_size", "0"),
    applied("sync_threshold", "3 50"),
    applied("sync_version", "1"),
];

/// Why a sysctl was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlError {
    /// No IPVS sysctl has that name.
    Unknown(String),
    /// The value is not one the setting takes.
    Invalid {
        /// The full name.
        name: String,
        /// The value given.
        value: String,
        /// What it takes.
        takes: &'static str,
    },
    /// rvs does not apply this setting; only its default is accepted.
    NotApplied {
        /// The full name.
        name: String,
        /// The value given.
        value: String,
        /// The kernel's default.
        default: &'static str,
        /// Why.
        note: &'static str,
    },
}

impl core::fmt::Display for SysctlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SysctlError::Unknown(n) => write!(f, "{n}: no such IPVS sysctl"),
            SysctlError::Invalid { name, value, takes } => {
                write!(f, "{name}: invalid value {value:?} (takes {takes})")
            }
            SysctlError::NotApplied {
                name,
                value,
                default,
                note,
            } => write!(
                f,
                "{name}: rvs does not apply this setting ({note}); only its default {default} \
                 is accepted, not {value}"
            ),
        }
    }
}

/// The prefix of the full names.
pub const PREFIX: &str = "net.ipv4.vs.";

/// The short name of `name`: `net.ipv4.vs.X`, `net/ipv4/vs/X` or `X`.
pub fn short_name(name: &str) -> &str {
    let n = name.trim();
    n.strip_prefix(PREFIX)
        .or_else(|| n.strip_prefix("net/ipv4/vs/"))
        .unwrap_or(n)
}

/// The entry of `name` (any spelling of [`short_name`]).
pub fn info(name: &str) -> Option<&'static SysctlInfo> {
    let s = short_name(name);
    SYSCTLS.iter().find(|i| i.name == s)
}

impl Sysctls {
    /// The value of `name` as `sysctl` prints it: the one in force for
    /// those rvs applies, the kernel's default for the others.
    pub fn get(&self, name: &str) -> Option<String> {
        let i = info(name)?;
        let b = |v: bool| u8::from(v).to_string();
        Some(match i.name {
            "conn_reuse_mode" => self.conn_reuse_mode.to_string(),
            "expire_nodest_conn" => b(self.expire_nodest_conn),
            "expire_quiescent_template" => b(self.expire_quiescent_template),
            "sloppy_sctp" => b(self.sloppy_sctp),
            "sloppy_tcp" => b(self.sloppy_tcp),
            "backup_only" => b(self.backup_only),
            "sync_persist_mode" => b(self.sync_persist_mode),
            "sync_qlen_max" => self.sync_qlen_max.to_string(),
            "sync_refresh_period" => self.sync_refresh_period.to_string(),
            "sync_retries" => self.sync_retries.to_string(),
            "sync_threshold" => format!("{} {}", self.sync_threshold, self.sync_period),
            "sync_version" => self.sync_version.to_string(),
            "sync_sock_size" => self.sync_sock_size.to_string(),
            _ => i.default.to_string(),
        })
    }

    /// Set `name` to `value` (see the module docs).
    ///
    /// # Errors
    ///
    /// [`SysctlError`]; nothing changed then.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SysctlError> {
        let i = info(name).ok_or_else(|| SysctlError::Unknown(name.trim().to_string()))?;
        let full = format!("{PREFIX}{}", i.name);
        let v = value.trim();
        if !i.applies {
            let same = v.split_whitespace().eq(i.default.split_whitespace());
            return if same {
                Ok(())
            } else {
                Err(SysctlError::NotApplied {
                    name: full,
                    value: v.to_string(),
                    default: i.default,
                    note: i.note,
                })
            };
        }
        let invalid = |takes| SysctlError::Invalid {
            name: full.clone(),
            value: v.to_string(),
            takes,
        };
        let flag = || match v {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(invalid("0 or 1")),
        };
        match i.name {
            "conn_reuse_mode" => {
                self.conn_reuse_mode = match v.parse::<u8>() {
                    Ok(m) if m <= 3 => m,
                    _ => return Err(invalid("0 to 3 (bit 0: reuse, bit 1: also in FIN_WAIT)")),
                }
            }
            "expire_nodest_conn" => self.expire_nodest_conn = flag()?,
            "expire_quiescent_template" => self.expire_quiescent_template = flag()?,
            "sloppy_sctp" => self.sloppy_sctp = flag()?,
            "sloppy_tcp" => self.sloppy_tcp = flag()?,
            // The kernel takes any integer and tests it for non-zero.
            "backup_only" => {
                self.backup_only = v.parse::<i32>().map_err(|_| invalid("an integer"))? != 0
            }
            "sync_persist_mode" => {
                self.sync_persist_mode = v.parse::<i32>().map_err(|_| invalid("an integer"))? != 0
            }
            "sync_qlen_max" => {
                self.sync_qlen_max = match v.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(invalid("a number of messages, 1 or more")),
                }
            }
            "sync_refresh_period" => {
                self.sync_refresh_period = match v.parse::<u32>() {
                    Ok(n) if n <= i32::MAX as u32 / 1000 => n,
                    _ => return Err(invalid("seconds, 0 to 2147483")),
                }
            }
            "sync_retries" => {
                self.sync_retries = match v.parse::<u8>() {
                    Ok(n) if n <= 3 => n,
                    _ => return Err(invalid("0 to 3")),
                }
            }
            "sync_threshold" => {
                // proc_do_sync_threshold: "threshold period", both >= 0,
                // threshold < period unless period is 0.
                let mut it = v.split_whitespace().map(str::parse::<u32>);
                let takes = "\"THRESHOLD PERIOD\", THRESHOLD < PERIOD unless PERIOD is 0";
                match (it.next(), it.next(), it.next()) {
                    (Some(Ok(t)), Some(Ok(p)), None) if p == 0 || t < p => {
                        self.sync_threshold = t;
                        self.sync_period = p;
                    }
                    _ => return Err(invalid(takes)),
                }
            }
            "sync_sock_size" => {
                self.sync_sock_size = match v.parse::<u32>() {
                    Ok(n) if n <= i32::MAX as u32 => n,
                    _ => return Err(invalid("bytes, 0 (the system's default) or more")),
                }
            }
            "sync_version" => {
                self.sync_version = match v {
                    "0" => 0,
                    "1" => 1,
                    _ => return Err(invalid("0 or 1")),
                }
            }
            _ => return Err(SysctlError::Unknown(full)),
        }
        Ok(())
    }

    /// Set several, all or none.
    ///
    /// # Errors
    ///
    /// The first [`SysctlError`]; `self` is unchanged then.
    pub fn set_all<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), SysctlError> {
        let mut next = *self;
        for (n, v) in pairs {
            next.set(n, v)?;
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_kernels() {
        let s = Sysctls::default();
        for i in SYSCTLS {
            assert_eq!(s.get(i.name).as_deref(), Some(i.default), "{}", i.name);
        }
        let mut names: Vec<_> = SYSCTLS.iter().map(|i| i.name).collect();
        names.sort_unstable();
        assert!(
            names.iter().zip(SYSCTLS).all(|(n, i)| *n == i.name),
            "sorted"
        );
    }

    /// The sysctls that shape connection sync (ip_vs_ctl.c `vs_vars`),
    /// with the kernel's defaults; `sync_threshold` holds the threshold
    /// and the period (there is no `sync_period` sysctl).
    #[test]
    fn sync_sysctls_are_the_kernels() {
        let want = [
            ("backup_only", "0"),
            ("sync_persist_mode", "0"),
            ("sync_ports", "1"),
            ("sync_qlen_max", "16384"),
            ("sync_refresh_period", "0"),
            ("sync_retries", "0"),
            ("sync_sock_size", "0"),
            ("sync_threshold", "3 50"),
            ("sync_version", "1"),
        ];
        for (name, default) in want {
            let i = info(name).unwrap_or_else(|| panic!("{name} missing"));
            let applies = name != "sync_ports";
            assert_eq!((i.default, i.applies), (default, applies), "{name}");
        }
        let synced = SYSCTLS
            .iter()
            .filter(|i| i.name.starts_with("sync_") || i.name == "backup_only")
            .count();
        assert_eq!(synced, want.len());
        assert!(info("sync_period").is_none());
    }

    #[test]
    fn set_and_refuse() {
        let mut s = Sysctls::default();
        s.set("net.ipv4.vs.sloppy_tcp", "1").unwrap();
        s.set("net/ipv4/vs/expire_nodest_conn", "1").unwrap();
        s.set("conn_reuse_mode", "0").unwrap();
        assert!(s.sloppy_tcp && s.expire_nodest_conn && s.conn_reuse_mode == 0);
        assert_eq!(s.get("sloppy_tcp").as_deref(), Some("1"));
        // A default of a setting rvs does not apply is accepted...
        s.set("drop_entry", "0").unwrap();
        s.set("sync_threshold", "3  50").unwrap();
        // ...another value is not.
        let e = s.set("drop_entry", "1").unwrap_err();
        assert!(e.to_string().contains("only its default 0"), "{e}");
        assert!(matches!(s.set("nope", "1"), Err(SysctlError::Unknown(_))));
        assert!(matches!(
            s.set("sloppy_tcp", "2"),
            Err(SysctlError::Invalid { .. })
        ));
        assert!(matches!(
            s.set("conn_reuse_mode", "4"),
            Err(SysctlError::Invalid { .. })
        ));
    }

    #[test]
    fn all_or_nothing() {
        let mut s = Sysctls::default();
        let before = s;
        assert!(
            s.set_all([("sloppy_tcp", "1"), ("secure_tcp", "3")])
                .is_err()
        );
        assert_eq!(s, before);
        s.set_all([("sloppy_tcp", "1"), ("sloppy_sctp", "1")])
            .unwrap();
        assert!(s.sloppy_tcp && s.sloppy_sctp);
    }
}
