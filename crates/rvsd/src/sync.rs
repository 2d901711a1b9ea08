//! Connection-synchronisation daemons (`--start-daemon`, `--stop-daemon`,
//! `-L --daemon`): which run, with which settings, and their sockets.
//!
//! rvsd records the daemons it is asked to run with the settings the
//! kernel would report (defaults filled in), so that `--daemon` listings
//! and the errors scripts rely on — EEXIST "Daemon has already run", ESRCH
//! "No daemon is running", ENODEV for an unknown interface, EINVAL for a
//! group that is not multicast — behave as with IPVS. The handler opens
//! each daemon's socket when it starts ([`crate::syncd::open_socket`]) and
//! keeps it here; the sync thread ([`crate::syncd`]) sends and receives.

use std::net::{IpAddr, Ipv4Addr};

use rvs_proto::{DaemonInfo, DaemonRole, DaemonSpec};

use crate::handler::Failure;
use crate::syncd::SyncSocket;

/// `IP_VS_SYNC_GROUP`: 224.0.0.81.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// `IP_VS_SYNC_PORT`.
pub const DEFAULT_PORT: u16 = 8848;
/// Default multicast TTL.
pub const DEFAULT_TTL: u8 = 1;

const ENODEV: i32 = 19;

/// A running daemon with its socket.
pub type RunningDaemon = (DaemonSpec, SyncSocket);

/// The running sync daemons (at most one master and one backup).
#[derive(Debug, Clone, Default)]
pub struct SyncDaemons {
    master: Option<DaemonSpec>,
    backup: Option<DaemonSpec>,
    master_sock: Option<SyncSocket>,
    backup_sock: Option<SyncSocket>,
}

impl SyncDaemons {
    /// Keep the socket of the running daemon `role`.
    pub fn attach(&mut self, role: DaemonRole, sock: Option<SyncSocket>) {
        match role {
            DaemonRole::Master => self.master_sock = sock,
            DaemonRole::Backup => self.backup_sock = sock,
        }
    }

    /// Whether a daemon of `role` runs.
    pub fn running(&self, role: DaemonRole) -> bool {
        match role {
            DaemonRole::Master => self.master.is_some(),
            DaemonRole::Backup => self.backup.is_some(),
        }
    }

    /// The running daemons that have a socket: (master, backup).
    pub fn sockets(&self) -> (Option<RunningDaemon>, Option<RunningDaemon>) {
        let pair = |spec: &Option<DaemonSpec>, sock: &Option<SyncSocket>| {
            Some((spec.clone()?, sock.clone()?))
        };
        (
            pair(&self.master, &self.master_sock),
            pair(&self.backup, &self.backup_sock),
        )
    }

    fn slot(&mut self, role: DaemonRole) -> &mut Option<DaemonSpec> {
        match role {
            DaemonRole::Master => &mut self.master,
            DaemonRole::Backup => &mut self.backup,
        }
    }

    /// Start a daemon. `mtu_of(ifname)` is the interface's MTU, `None` if
    /// there is no such interface. Returns the settings in force (defaults
    /// filled in as the kernel does).
    pub fn start(
        &mut self,
        spec: &DaemonSpec,
        mtu_of: impl Fn(&str) -> Option<u32>,
    ) -> Result<DaemonSpec, Failure> {
        let group = spec.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
        if !group.is_multicast() {
            return Err(Failure::invalid("sync group is not a multicast address"));
        }
        if self.slot(spec.role).is_some() {
            return Err(Failure::new(17, "sync daemon already running"));
        }
        let Some(mtu) = mtu_of(&spec.mcast_ifn) else {
            return Err(Failure::new(
                ENODEV,
                format!("unknown mcast interface: {}", spec.mcast_ifn),
            ));
        };
        // start_sync_thread: header of the sync datagrams, and sync_maxlen.
        let hlen: u32 = if group.is_ipv6() { 48 } else { 28 };
        let (link_mtu, min) = match spec.role {
            DaemonRole::Backup => (mtu.clamp(1500, 65535), 1024),
            DaemonRole::Master => (1500, 1),
        };
        let maxlen = if spec.maxlen != 0 {
            u32::from(spec.maxlen).clamp(min, 65535 - hlen)
        } else {
            link_mtu - hlen
        };
        let filled = DaemonSpec {
            role: spec.role,
            mcast_ifn: spec.mcast_ifn.clone(),
            syncid: spec.syncid,
            maxlen: u16::try_from(maxlen).unwrap_or(u16::MAX),
            group: Some(group),
            port: if spec.port != 0 {
                spec.port
            } else {
                DEFAULT_PORT
            },
            ttl: if spec.ttl != 0 { spec.ttl } else { DEFAULT_TTL },
        };
        *self.slot(spec.role) = Some(filled.clone());
        Ok(filled)
    }

    /// Stop a daemon (ESRCH if it is not running).
    pub fn stop(&mut self, role: DaemonRole) -> Result<(), Failure> {
        match self.slot(role).take() {
            Some(_) => {
                self.attach(role, None);
                Ok(())
            }
            None => Err(Failure::new(3, "no sync daemon is running")),
        }
    }

    /// Running daemons, master first.
    pub fn list(&self) -> Vec<DaemonInfo> {
        [&self.master, &self.backup]
            .into_iter()
            .flatten()
            .map(|spec| DaemonInfo { spec: spec.clone() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role: DaemonRole, ifn: &str) -> DaemonSpec {
        DaemonSpec {
            role,
            mcast_ifn: ifn.into(),
            syncid: 5,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        }
    }

    fn mtu(name: &str) -> Option<u32> {
        match name {
            "eth0" => Some(1500),
            "jumbo" => Some(9000),
            _ => None,
        }
    }

    #[test]
    fn start_stop_and_defaults() {
        let mut d = SyncDaemons::default();
        let m = d.start(&spec(DaemonRole::Master, "jumbo"), mtu).unwrap();
        assert_eq!(m.maxlen, 1472);
        assert_eq!(m.group, Some(IpAddr::V4(DEFAULT_GROUP)));
        assert_eq!((m.port, m.ttl), (8848, 1));
        let b = d.start(&spec(DaemonRole::Backup, "jumbo"), mtu).unwrap();
        assert_eq!(b.maxlen, 9000 - 28);
        assert_eq!(
            d.start(&spec(DaemonRole::Master, "eth0"), mtu)
                .unwrap_err()
                .errno,
            17
        );
        let l = d.list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].spec.role, DaemonRole::Master);
        d.stop(DaemonRole::Master).unwrap();
        assert_eq!(d.stop(DaemonRole::Master).unwrap_err().errno, 3);
        assert_eq!(d.list().len(), 1);
    }

    #[test]
    fn errors() {
        let mut d = SyncDaemons::default();
        assert_eq!(
            d.start(&spec(DaemonRole::Master, "nope0"), mtu)
                .unwrap_err()
                .errno,
            19
        );
        let mut s = spec(DaemonRole::Master, "eth0");
        s.group = Some("10.0.0.1".parse().unwrap());
        assert_eq!(d.start(&s, mtu).unwrap_err().errno, 22);
        s.group = Some("ff02::81".parse().unwrap());
        s.maxlen = 65535;
        let m = d.start(&s, mtu).unwrap();
        assert_eq!(m.maxlen, 65535 - 48);
        assert_eq!(d.list().len(), 1);
    }
}
