// SPDX-License-Identifier: GPL-2.0-or-later
//! A configuration as ipvsadm operations: the services of every
//! `virtual_server` (a group is one service per member) and their real
//! servers, reconciled against what rvsd already has, sent as one atomic
//! batch (what `rvsadm -R` sends).

use std::net::IpAddr;

use rvs_proto::{
    BatchLine, DestSpec, Fwd, Op, SVC_F_HASHED, SVC_F_PERSISTENT, ServiceId, ServiceInfo,
    ServiceSpec, TunnelSpec,
};

use super::conf::{Config, GroupMember, RealServer, VirtualServer, VsAddr};

/// The services a `virtual_server` stands for.
pub fn service_ids(vs: &VirtualServer) -> Vec<ServiceId> {
    let v6 = vs
        .ipv6
        .unwrap_or_else(|| vs.reals.first().is_some_and(|r| r.addr.is_ipv6()));
    let addr = |addr: IpAddr, port: u16| ServiceId::Addr {
        proto: vs.proto,
        addr,
        port,
    };
    match &vs.addr {
        VsAddr::Addr(a, p) => vec![addr(*a, *p)],
        VsAddr::Fwmark(m) => vec![ServiceId::Fwmark { v6, mark: *m }],
        VsAddr::Group(_, members) => members
            .iter()
            .map(|m| match m {
                GroupMember::Addr(a, p) => addr(*a, *p),
                GroupMember::Fwmark(mark) => ServiceId::Fwmark { v6, mark: *mark },
            })
            .collect(),
    }
}

/// The service that names a `virtual_server` in log lines and alerts (a
/// group's first member); `None` for an empty group.
pub fn first_service_id(vs: &VirtualServer) -> Option<ServiceId> {
    service_ids(vs).into_iter().next()
}

/// keepalived's `FMT_VS` of a virtual server, as its log lines, FIFO
/// lines and e-mails name it: `[10.0.0.1]:tcp:80`, `FWM 3`, and a group's
/// `[NAME]:0`.
pub fn fmt_vs(vs: &VirtualServer) -> String {
    match &vs.addr {
        VsAddr::Group(name, _) => format!("[{name}]:0"),
        _ => first_service_id(vs).map_or_else(String::new, |id| fmt_service(&id)),
    }
}

/// keepalived's `FMT_VS`/`FMT_RS` style: `[10.0.0.1]:tcp:80`, `FWM 3`.
pub fn fmt_service(id: &ServiceId) -> String {
    match id {
        ServiceId::Addr { proto, addr, port } => format!("[{addr}]:{}:{port}", proto.lower()),
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// `[addr]:proto:port` of a real server of service `id`.
pub fn fmt_real(id: &ServiceId, rs: &RealServer) -> String {
    let proto = match id {
        ServiceId::Addr { proto, .. } => proto.lower(),
        ServiceId::Fwmark { .. } => "tcp",
    };
    format!("[{}]:{proto}:{}", rs.addr, rs.port)
}

/// The `-A` settings of a virtual server's service `id`.
pub fn service_spec(vs: &VirtualServer, id: ServiceId) -> ServiceSpec {
    let (flags, timeout) = match vs.persistence_timeout {
        Some(t) => (vs.sched_flags | SVC_F_PERSISTENT, t),
        None => (vs.sched_flags, 0),
    };
    let netmask = match vs.persistence_granularity {
        Some(m) => m,
        None if id.is_v6() => 128,
        None => 0xffff_ffff,
    };
    ServiceSpec {
        id,
        scheduler: vs.sched.clone(),
        flags,
        timeout,
        netmask,
        pe: vs.persistence_engine.clone(),
    }
}

/// The `-a`/`-e` settings of real server `rs` with `weight`.
pub fn dest_spec(rs: &RealServer, weight: u32) -> DestSpec {
    DestSpec {
        addr: rs.addr,
        port: rs.port,
        fwd: rs.fwd,
        weight,
        u_threshold: rs.uthreshold,
        l_threshold: rs.lthreshold,
        tunnel: TunnelSpec::default(),
    }
}

/// What the table should hold for a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// In the table with this weight.
    In(u32),
    /// Not in the table.
    Out,
}

/// What real server `rs` should be when alive or not, with `weight`
/// (its configured one, or the one a MISC_CHECK set).
pub fn want(rs: &RealServer, alive: bool, weight: u32) -> Want {
    match (alive, rs.inhibit_on_failure) {
        (true, _) => Want::In(weight),
        (false, true) => Want::In(0),
        (false, false) => Want::Out,
    }
}

/// The operations that make rvsd's table (`current`) hold every service of
/// `conf`, with each real server as `state(vs index, rs index)` says and
/// each sorry server as `sorry(vs index)` says.
/// Services and real servers the file does not name are left alone, except
/// real servers of the file's own services (removed: the file is the truth
/// for its services).
pub fn plan(
    conf: &Config,
    current: &[ServiceInfo],
    state: impl Fn(usize, usize) -> Want,
    sorry: impl Fn(usize) -> Want,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (vi, vs) in conf.services.iter().enumerate() {
        for id in service_ids(vs) {
            let spec = service_spec(vs, id);
            let cur = current.iter().find(|s| s.spec.id == id);
            match cur {
                None => ops.push(Op::AddService(spec)),
                Some(c) => {
                    let mut have = c.spec.clone();
                    have.flags &= !SVC_F_HASHED;
                    if have != spec {
                        ops.push(Op::EditService(spec));
                    }
                }
            }
            let has = |rs: &RealServer| {
                cur.and_then(|c| {
                    c.dests
                        .iter()
                        .find(|d| d.spec.addr == rs.addr && d.spec.port == rs.port)
                })
            };
            let sorry_rs = vs.sorry();
            let entries = vs
                .reals
                .iter()
                .enumerate()
                .map(|(ri, rs)| (rs, state(vi, ri)))
                .chain(sorry_rs.as_ref().map(|s| (s, sorry(vi))));
            for (rs, want) in entries {
                match (want, has(rs)) {
                    (Want::In(w), None) => ops.push(Op::AddDest {
                        service: id,
                        dest: dest_spec(rs, w),
                    }),
                    (Want::In(w), Some(d)) => {
                        let want = dest_spec(rs, w);
                        if d.spec != want {
                            ops.push(Op::EditDest {
                                service: id,
                                dest: want,
                            });
                        }
                    }
                    (Want::Out, Some(_)) => ops.push(Op::DeleteDest {
                        service: id,
                        addr: rs.addr,
                        port: rs.port,
                    }),
                    (Want::Out, None) => {}
                }
            }
            if let Some(c) = cur {
                for d in &c.dests {
                    let named = vs
                        .reals
                        .iter()
                        .chain(sorry_rs.as_ref())
                        .any(|r| r.addr == d.spec.addr && r.port == d.spec.port);
                    if !named {
                        ops.push(Op::DeleteDest {
                            service: id,
                            addr: d.spec.addr,
                            port: d.spec.port,
                        });
                    }
                }
            }
        }
    }
    ops
}

/// The operations as one batch (line numbers: their order).
pub fn batch(ops: Vec<Op>) -> Vec<BatchLine> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| BatchLine { line: i + 1, op })
        .collect()
}

/// The ipvsadm command line of `op` (for `--dry-run` and logs).
pub fn ipvsadm_line(op: &Op) -> String {
    let svc = |id: &ServiceId| match id {
        ServiceId::Addr { proto, addr, port } => {
            let flag = match proto {
                rvs_proto::Proto::Tcp => "-t",
                rvs_proto::Proto::Udp => "-u",
                rvs_proto::Proto::Sctp => "--sctp-service",
            };
            match addr {
                IpAddr::V6(a) => format!("{flag} [{a}]:{port}"),
                IpAddr::V4(a) => format!("{flag} {a}:{port}"),
            }
        }
        ServiceId::Fwmark { v6, mark } => {
            format!("-f {mark}{}", if *v6 { " -6" } else { "" })
        }
    };
    let rs = |a: &IpAddr, p: u16| match a {
        IpAddr::V6(a) => format!("[{a}]:{p}"),
        IpAddr::V4(a) => format!("{a}:{p}"),
    };
    let sspec = |s: &ServiceSpec| {
        let mut t = format!("{} -s {}", svc(&s.id), s.scheduler);
        if s.flags & SVC_F_PERSISTENT != 0 {
            t += &format!(" -p {}", s.timeout);
        }
        t
    };
    let dspec = |d: &DestSpec| {
        let fwd = match d.fwd {
            Fwd::Masq => "-m",
            Fwd::Tunnel => "-i",
            Fwd::Route | Fwd::Local => "-g",
        };
        format!("-r {} {fwd} -w {}", rs(&d.addr, d.port), d.weight)
    };
    match op {
        Op::AddService(s) => format!("-A {}", sspec(s)),
        Op::EditService(s) => format!("-E {}", sspec(s)),
        Op::AddDest { service, dest } => format!("-a {} {}", svc(service), dspec(dest)),
        Op::EditDest { service, dest } => format!("-e {} {}", svc(service), dspec(dest)),
        Op::DeleteDest {
            service,
            addr,
            port,
        } => format!("-d {} -r {}", svc(service), rs(addr, *port)),
        Op::DeleteService(id) => format!("-D {}", svc(id)),
        Op::Flush => "-C".to_string(),
        Op::SetTimeouts { tcp, tcpfin, udp } => format!("--set {tcp} {tcpfin} {udp}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::{conf, lex};
    use rvs_proto::{DestInfo, Proto, Rates, Stats};

    fn config(text: &str) -> Config {
        let mut w = Vec::new();
        let t = lex::parse_text(text, "k.conf", std::path::Path::new("/x"), &mut w).unwrap();
        conf::build(&t, &mut w).unwrap()
    }

    const CONF: &str = "virtual_server 10.0.0.100 80 {\n lb_algo rr\n lb_kind DR\n \
        persistence_timeout 30\n real_server 10.0.0.11 80 { weight 2\n TCP_CHECK { } }\n \
        real_server 10.0.0.12 80 { inhibit_on_failure\n TCP_CHECK { } }\n \
        real_server 10.0.0.13 80 { TCP_CHECK { } }\n}\n";

    #[test]
    fn start_batch_against_an_empty_table() {
        let c = config(CONF);
        // .11 up, .12 and .13 down: .12 inhibited (weight 0), .13 left out.
        let ops = plan(
            &c,
            &[],
            |_, r| {
                want(
                    &c.services[0].reals[r],
                    r == 0,
                    c.services[0].reals[r].weight,
                )
            },
            |_| Want::Out,
        );
        let lines: Vec<String> = ops.iter().map(ipvsadm_line).collect();
        assert_eq!(
            lines,
            [
                "-A -t 10.0.0.100:80 -s rr -p 30",
                "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 2",
                "-a -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 0",
            ]
        );
        let b = batch(ops);
        assert_eq!(b[2].line, 3);
    }

    #[test]
    fn reconcile_only_what_differs() {
        let c = config(CONF);
        let id = ServiceId::Addr {
            proto: Proto::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        };
        let mut spec = service_spec(&c.services[0], id);
        spec.flags |= SVC_F_HASHED;
        let d = |rs: &RealServer, w| DestInfo {
            spec: dest_spec(rs, w),
            active: 0,
            inactive: 0,
            persist: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        };
        let reals = &c.services[0].reals;
        let mut stranger = d(&reals[0], 1);
        stranger.spec.addr = "10.0.0.99".parse().unwrap();
        let cur = vec![ServiceInfo {
            spec,
            stats: Stats::default(),
            rates: Rates::default(),
            dests: vec![d(&reals[0], 2), d(&reals[1], 5), d(&reals[2], 1), stranger],
        }];
        let ops = plan(
            &c,
            &cur,
            |_, r| want(&reals[r], r != 2, reals[r].weight),
            |_| Want::Out,
        );
        let lines: Vec<String> = ops.iter().map(ipvsadm_line).collect();
        assert_eq!(
            lines,
            [
                "-e -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 1",
                "-d -t 10.0.0.100:80 -r 10.0.0.13:80",
                "-d -t 10.0.0.100:80 -r 10.0.0.99:80",
            ]
        );
    }

    #[test]
    fn groups_and_fwmarks_expand() {
        let c = config(
            "virtual_server_group G {\n 10.0.0.1 80\n fwmark 5\n}\nvirtual_server group G {\n \
             protocol UDP\n real_server 2001:db8::1 53 { }\n}\n",
        );
        let ids = service_ids(&c.services[0]);
        assert_eq!(
            ids,
            [
                ServiceId::Addr {
                    proto: Proto::Udp,
                    addr: "10.0.0.1".parse().unwrap(),
                    port: 80
                },
                ServiceId::Fwmark { v6: true, mark: 5 },
            ]
        );
        assert_eq!(fmt_service(&ids[0]), "[10.0.0.1]:udp:80");
        assert_eq!(
            fmt_real(&ids[0], &c.services[0].reals[0]),
            "[2001:db8::1]:udp:53"
        );
        assert_eq!(service_spec(&c.services[0], ids[1]).netmask, 128);
    }
}
