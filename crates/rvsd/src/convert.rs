//! Conversions between the control API (`rvs-proto`) and the engine (`rvs-core`).
//!
//! The API types are the stable contract; the engine's are internal. Two
//! details worth knowing:
//! * `SVC_F_HASHED` is reported on every live service (as the kernel's
//!   `IPVS_CMD_GET_SERVICE` does) and stripped from incoming specs (the kernel
//!   sets it itself when it hashes the service), so `-S` / `-R` round trips
//!   stay clean;
//! * `Fwd::Local` cannot be set (ipvsadm cannot either; the kernel derives it
//!   from a local address): it is refused with EINVAL.

use rvs_core::batch::ConfigOp;
use rvs_core::conn::Conn;
use rvs_core::dest::Dest;
use rvs_core::fwmark::FwmarkRule;
use rvs_core::service::{Service, ServiceConfig, ServiceKey};
use rvs_core::stats::{Counters, Rates as CoreRates};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol, TunType, Tunnel};
use rvs_proto::{
    ConnInfo, DaemonRole, DaemonSpec, DestInfo, DestSpec, Fwd, Op, Proto, Rates, SVC_F_HASHED,
    ServiceId, ServiceInfo, ServiceSpec, Stats, TunKind, TunnelSpec,
};

use rvs_proto::fwmark::FwmarkSpec;

use crate::handler::Failure;

/// ENODEV: the errno of an unknown interface.
pub const ENODEV: i32 = 19;

/// What an [`Op`] asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A change to the engine's configuration.
    Config(ConfigOp),
    /// `--start-daemon`.
    StartDaemon(DaemonSpec),
    /// `--stop-daemon`.
    StopDaemon(DaemonRole),
}

/// Engine protocol of an API protocol.
pub fn protocol(p: Proto) -> Protocol {
    match p {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
        Proto::Sctp => Protocol::Sctp,
    }
}

/// API protocol of an engine protocol.
pub fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Sctp => Proto::Sctp,
    }
}

/// Engine key of a service identity.
pub fn service_key(id: &ServiceId) -> ServiceKey {
    match *id {
        ServiceId::Addr { proto, addr, port } => ServiceKey::Addr {
            proto: protocol(proto),
            addr,
            port,
        },
        ServiceId::Fwmark { v6, mark } => ServiceKey::Fwmark {
            af: if v6 { Af::Inet6 } else { Af::Inet },
            mark,
        },
    }
}

/// Service identity of an engine key.
pub fn service_id(key: &ServiceKey) -> ServiceId {
    match *key {
        ServiceKey::Addr {
            proto: p,
            addr,
            port,
        } => ServiceId::Addr {
            proto: proto(p),
            addr,
            port,
        },
        ServiceKey::Fwmark { af, mark } => ServiceId::Fwmark {
            v6: af == Af::Inet6,
            mark,
        },
    }
}

/// Engine configuration of a service spec (`SVC_F_HASHED` stripped).
pub fn service_config(spec: &ServiceSpec) -> ServiceConfig {
    ServiceConfig {
        scheduler: spec.scheduler.clone(),
        flags: spec.flags & !SVC_F_HASHED,
        timeout: spec.timeout,
        netmask: spec.netmask,
        pe: spec.pe.clone(),
    }
}

/// Engine configuration of a real-server spec.
pub fn dest_config(spec: &DestSpec) -> Result<DestConfig, Failure> {
    let fwd = match spec.fwd {
        Fwd::Masq => FwdMethod::Masq,
        Fwd::Route => FwdMethod::Route,
        Fwd::Tunnel => FwdMethod::Tunnel,
        Fwd::Local => {
            return Err(Failure::invalid(
                "the local-node forwarding method cannot be set",
            ));
        }
    };
    Ok(DestConfig {
        addr: spec.addr,
        port: spec.port,
        fwd,
        tunnel: Tunnel {
            kind: match spec.tunnel.kind {
                TunKind::Ipip => TunType::Ipip,
                TunKind::Gue => TunType::Gue,
                TunKind::Gre => TunType::Gre,
            },
            port: spec.tunnel.port,
            flags: spec.tunnel.flags,
        },
        weight: spec.weight,
        u_threshold: spec.u_threshold,
        l_threshold: spec.l_threshold,
    })
}

/// Engine rule of an API rule, the interface name resolved with
/// `ifindex_of` (validation is the engine's, in `FwmarkRules::add`).
///
/// # Errors
///
/// ENODEV for an interface that does not exist.
pub fn fwmark_rule(
    spec: &FwmarkSpec,
    ifindex_of: impl Fn(&str) -> Option<u32>,
) -> Result<FwmarkRule, Failure> {
    let iif = match &spec.iif {
        None => None,
        Some(name) => Some(ifindex_of(name).ok_or_else(|| {
            Failure::new(ENODEV, format!("fwmark rule: no such interface '{name}'"))
        })?),
    };
    Ok(FwmarkRule {
        addr: spec.addr,
        prefix_len: spec.prefix_len,
        proto: spec.proto.map(protocol),
        dports: spec.dports.clone(),
        iif,
        mark: spec.mark,
    })
}

/// API rule of an engine rule, the interface named by `ifname_of`.
pub fn fwmark_spec(rule: &FwmarkRule, ifname_of: impl Fn(u32) -> String) -> FwmarkSpec {
    FwmarkSpec {
        addr: rule.addr,
        prefix_len: rule.prefix_len,
        proto: rule.proto.map(proto),
        dports: rule.dports.clone(),
        iif: rule.iif.map(ifname_of),
        mark: rule.mark,
    }
}

/// What `op` asks for, in engine terms.
pub fn action(op: &Op) -> Result<Action, Failure> {
    Ok(Action::Config(match op {
        Op::AddService(spec) => ConfigOp::AddService(service_key(&spec.id), service_config(spec)),
        Op::EditService(spec) => ConfigOp::EditService(service_key(&spec.id), service_config(spec)),
        Op::DeleteService(id) => ConfigOp::DeleteService(service_key(id)),
        Op::Flush => ConfigOp::Flush,
        Op::AddDest { service, dest } => {
            ConfigOp::AddDest(service_key(service), dest_config(dest)?)
        }
        Op::EditDest { service, dest } => {
            ConfigOp::EditDest(service_key(service), dest_config(dest)?)
        }
        Op::DeleteDest {
            service,
            addr,
            port,
        } => ConfigOp::DeleteDest(service_key(service), *addr, *port),
        Op::Zero(id) => ConfigOp::Zero(id.as_ref().map(service_key)),
        Op::SetTimeouts { tcp, tcpfin, udp } => ConfigOp::SetTimeouts(*tcp, *tcpfin, *udp),
        Op::StartDaemon(spec) => return Ok(Action::StartDaemon(spec.clone())),
        Op::StopDaemon(role) => return Ok(Action::StopDaemon(*role)),
    }))
}

/// Counters as the API shows them.
pub fn stats(c: &Counters) -> Stats {
    Stats {
        conns: c.conns,
        inpkts: c.inpkts,
        outpkts: c.outpkts,
        inbytes: c.inbytes,
        outbytes: c.outbytes,
    }
}

/// Rates as the API shows them.
pub fn rates(r: &CoreRates) -> Rates {
    Rates {
        cps: r.cps,
        inpps: r.inpps,
        outpps: r.outpps,
        inbps: r.inbps,
        outbps: r.outbps,
    }
}

/// A real server's settings as the API shows them.
pub fn dest_spec(d: &Dest) -> DestSpec {
    DestSpec {
        addr: d.addr,
        port: d.port,
        fwd: match d.fwd {
            FwdMethod::Masq => Fwd::Masq,
            FwdMethod::Route => Fwd::Route,
            FwdMethod::Tunnel => Fwd::Tunnel,
        },
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tunnel: TunnelSpec {
            kind: match d.tunnel.kind {
                TunType::Ipip => TunKind::Ipip,
                TunType::Gue => TunKind::Gue,
                TunType::Gre => TunKind::Gre,
            },
            port: d.tunnel.port,
            flags: d.tunnel.flags,
        },
    }
}

/// A real server as listed.
pub fn dest_info(d: &Dest) -> DestInfo {
    DestInfo {
        spec: dest_spec(d),
        active: d.activeconns,
        inactive: d.inactconns,
        persist: d.persistconns,
        stats: stats(&d.stats.shown()),
        rates: rates(&d.stats.rates()),
    }
}

/// A service as listed: `SVC_F_HASHED` set, real servers newest first.
pub fn service_info(svc: &Service) -> ServiceInfo {
    ServiceInfo {
        spec: ServiceSpec {
            id: service_id(&svc.key),
            scheduler: svc.scheduler.name().to_string(),
            flags: svc.config.flags | SVC_F_HASHED,
            timeout: svc.config.timeout,
            netmask: svc.config.netmask,
            pe: svc.config.pe.clone(),
        },
        stats: stats(&svc.stats.shown()),
        rates: rates(&svc.stats.rates()),
        dests: svc.dests.iter().map(dest_info).collect(),
    }
}

/// A connection entry (or template) as `/proc/net/ip_vs_conn` shows it,
/// with `pe`, a template's persistence-engine data (a SIP Call-ID,
/// `ConnTable::pe_data`).
pub fn conn_info(c: &Conn, pe: Option<&[u8]>, now: Instant) -> ConnInfo {
    let mut info = conn_record(c, pe.is_some(), now).to_info();
    info.pe = pe.map(|d| (PE_SIP.to_string(), String::from_utf8_lossy(d).into_owned()));
    info
}

/// The one persistence engine, as listings name it.
pub const PE_SIP: &str = "sip";

/// [`conn_info`] with borrowed text, for the compact listing: nothing
/// allocated per entry. `has_pe`: a template with persistence-engine data,
/// whose cport (the data's tag) is shown as 0; the caller adds the data.
pub fn conn_record(c: &Conn, has_pe: bool, now: Instant) -> rvs_proto::packed::ConnRecord<'static> {
    rvs_proto::packed::ConnRecord {
        proto: c.proto,
        caddr: c.caddr,
        cport: c.shown_cport(has_pe),
        vaddr: c.vaddr,
        vport: c.vport,
        daddr: c.daddr,
        dport: c.dport,
        state: c.state_name(),
        expire_secs: c.expire_secs(now),
        flags: c.flags,
        pe: None,
    }
}

/// The engine's counters as `rvs dataplane` shows them.
pub fn engine_counters(e: &rvs_core::Engine) -> rvs_proto::EngineCounters {
    let c = e.counters();
    rvs_proto::EngineCounters {
        conns: e.conns().len() as u64,
        max_conns: e.conns().capacity_limit() as u64,
        evicted_syn_recv: c.evicted_syn_recv,
        table_full: c.table_full,
        hops: e.hop_count() as u64,
        hops_pruned: c.hops_pruned,
        drop_malformed: c.drop_malformed,
        drop_no_conn: c.drop_no_conn,
        drop_no_dest: c.drop_no_dest,
        drop_dest_gone: c.drop_dest_gone,
        drop_table_full: c.drop_table_full,
        drop_ttl: c.drop_ttl,
        drop_rewrite: c.drop_rewrite,
        drop_other: c.drop_other,
        frag_datagrams: e.frag_datagrams() as u64,
        frag_tracked: c.frag.tracked,
        frag_held: c.frag.held,
        frag_released: c.frag.released,
        frag_expired: c.frag.expired,
        frag_evicted: c.frag.evicted,
        frag_no_room: c.frag.no_room,
        tunnel_fragmented: c.tunnel_fragmented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let ids = [
            ServiceId::Addr {
                proto: Proto::Sctp,
                addr: "2001:db8::1".parse().unwrap(),
                port: 0,
            },
            ServiceId::Fwmark { v6: true, mark: 9 },
            ServiceId::Fwmark { v6: false, mark: 1 },
        ];
        for id in ids {
            assert_eq!(service_id(&service_key(&id)), id);
        }
    }

    #[test]
    fn hashed_is_stripped_on_input() {
        let spec = ServiceSpec {
            id: ServiceId::Fwmark { v6: false, mark: 1 },
            scheduler: "rr".into(),
            flags: SVC_F_HASHED | 1,
            timeout: 300,
            netmask: u32::MAX,
            pe: None,
        };
        assert_eq!(service_config(&spec).flags, 1);
    }

    #[test]
    fn local_forwarding_is_refused() {
        let spec = DestSpec {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
            fwd: Fwd::Local,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelSpec::default(),
        };
        assert_eq!(dest_config(&spec).unwrap_err().errno, 22);
    }
}
