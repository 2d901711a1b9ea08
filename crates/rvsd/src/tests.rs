//! Request-handler tests: every request and op, the errnos, authorization,
//! batch atomicity, protocol errors. No sockets.
//!
//! Over 800 lines on purpose: one test per request kind, all on the same
//! small fixtures (`state`, `spec`, `dest`, `apply`) at the top; split by
//! topic when a topic grows its own fixtures.

use std::net::{IpAddr, Ipv4Addr};

use rvs_core::engine::{Frame, Hop, PortConfig, PortId};
use rvs_core::{Engine, EngineConfig, Instant};
use rvs_proto::{
    BatchLine, DaemonRole, DaemonSpec, DestSpec, Envelope, ErrorReply, Fwd, Op, PROTOCOL_VERSION,
    Proto, Reply, Request, SVC_F_HASHED, SVC_F_PERSISTENT, ServiceId, ServiceInfo, ServiceSpec,
    TunKind, TunnelSpec, encode,
};

use crate::auth::Peer;
use crate::handler::State;

const ROOT: Peer = Peer {
    uid: 0,
    pid: 1,
    privileged: true,
};
const NOBODY: Peer = Peer {
    uid: 65534,
    pid: 2,
    privileged: false,
};

fn mtu_of(name: &str) -> Option<u32> {
    (name == "eth0" || name == "lo").then_some(1500)
}

fn state() -> State {
    State::new(Engine::new(EngineConfig::default()), mtu_of)
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Addr {
        proto: Proto::Tcp,
        addr: v4(addr),
        port,
    }
}

fn spec(id: ServiceId, sched: &str) -> ServiceSpec {
    ServiceSpec {
        id,
        scheduler: sched.into(),
        flags: 0,
        timeout: 0,
        netmask: if id.is_v6() { 128 } else { u32::MAX },
        pe: None,
    }
}

fn dest(addr: &str, port: u16) -> DestSpec {
    DestSpec {
        addr: v4(addr),
        port,
        fwd: Fwd::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tunnel: TunnelSpec::default(),
    }
}

fn add_dest(service: ServiceId, d: DestSpec) -> Op {
    Op::AddDest { service, dest: d }
}

const T0: Instant = Instant::ZERO;

fn apply(s: &mut State, op: Op) -> Reply {
    s.handle(&ROOT, Request::Apply(op), T0)
}

fn ok(s: &mut State, op: Op) {
    assert_eq!(apply(s, op.clone()), Reply::Ok, "{op:?}");
}

fn errno(r: &Reply) -> i32 {
    match r {
        Reply::Error(e) => e.errno,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn error(r: Reply) -> ErrorReply {
    match r {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn list(s: &mut State) -> Vec<ServiceInfo> {
    match s.handle(&ROOT, Request::ListServices, T0) {
        Reply::Services(v) => v,
        other => panic!("{other:?}"),
    }
}

/// A listing dump to compare tables byte for byte.
fn dump(s: &mut State) -> String {
    let t = s.handle(&ROOT, Request::GetTimeouts, T0);
    let d = s.handle(&ROOT, Request::ListDaemons, T0);
    format!("{:?}\n{t:?}\n{d:?}", list(s))
}

fn populated() -> State {
    let mut s = state();
    ok(&mut s, Op::AddService(spec(tcp("10.0.0.1", 80), "rr")));
    ok(
        &mut s,
        add_dest(tcp("10.0.0.1", 80), dest("192.168.1.10", 80)),
    );
    ok(
        &mut s,
        add_dest(tcp("10.0.0.1", 80), dest("192.168.1.11", 80)),
    );
    ok(
        &mut s,
        Op::AddService(spec(ServiceId::Fwmark { v6: false, mark: 7 }, "wlc")),
    );
    s
}

#[test]
fn info() {
    let mut s = state();
    assert_eq!(
        s.handle(&ROOT, Request::Info, T0),
        Reply::Info {
            version: 0x010201,
            conn_tab_size: 4096
        }
    );
}

#[test]
fn services_add_list_get_edit_delete() {
    let mut s = populated();
    let web = tcp("10.0.0.1", 80);
    let fwm = ServiceId::Fwmark { v6: false, mark: 7 };
    let l = list(&mut s);
    // Address services first (newest first), then fwmark ones; hashed reported; real servers newest first.
    assert_eq!(l.len(), 2);
    assert_eq!(l[1].spec.id, fwm);
    assert_eq!(l[0].spec.id, web);
    assert_eq!(l[0].spec.flags, SVC_F_HASHED);
    assert_eq!(l[0].spec.scheduler, "rr");
    assert_eq!(
        l[0].dests.iter().map(|d| d.spec.addr).collect::<Vec<_>>(),
        vec![v4("192.168.1.11"), v4("192.168.1.10")]
    );
    assert_eq!(l[0].dests[0].spec, dest("192.168.1.11", 80));

    // Get.
    match s.handle(&ROOT, Request::GetService(web), T0) {
        Reply::Service(info) => assert_eq!(info, l[0]),
        other => panic!("{other:?}"),
    }
    let r = s.handle(&ROOT, Request::GetService(tcp("10.9.9.9", 80)), T0);
    assert_eq!(errno(&r), 3);

    // Edit replaces everything; a hashed flag coming back in is dropped.
    let mut e = spec(web, "sh");
    e.flags = SVC_F_PERSISTENT | SVC_F_HASHED | 0x8;
    e.timeout = 600;
    e.netmask = 0xffff_ff00;
    ok(&mut s, Op::EditService(e.clone()));
    let got = list(&mut s)[0].spec.clone();
    assert_eq!(got.flags, SVC_F_PERSISTENT | SVC_F_HASHED | 0x8);
    assert_eq!(
        (got.timeout, got.netmask, got.scheduler.as_str()),
        (600, 0xffff_ff00, "sh")
    );
    assert_eq!(
        s.engine()
            .services()
            .iter()
            .map(|(_, svc)| svc.config.flags & SVC_F_HASHED)
            .sum::<u32>(),
        0
    );

    // Errors.
    assert_eq!(errno(&apply(&mut s, Op::AddService(spec(web, "rr")))), 17);
    assert_eq!(
        errno(&apply(
            &mut s,
            Op::AddService(spec(tcp("10.0.0.2", 80), "bogus"))
        )),
        2
    );
    let mut pe = spec(tcp("10.0.0.2", 80), "rr");
    pe.pe = Some("nope".into());
    assert_eq!(errno(&apply(&mut s, Op::AddService(pe))), 2);
    assert_eq!(
        errno(&apply(
            &mut s,
            Op::EditService(spec(tcp("10.0.0.2", 80), "rr"))
        )),
        3
    );
    assert_eq!(
        errno(&apply(&mut s, Op::EditService(spec(web, "bogus")))),
        2
    );
    let mut v6 = spec(
        ServiceId::Addr {
            proto: Proto::Udp,
            addr: v4("2001:db8::1"),
            port: 53,
        },
        "rr",
    );
    v6.netmask = 129;
    assert_eq!(errno(&apply(&mut s, Op::AddService(v6))), 22);
    assert_eq!(
        errno(&apply(
            &mut s,
            Op::AddService(spec(ServiceId::Fwmark { v6: false, mark: 0 }, "rr"))
        )),
        22
    );
    let e = error(apply(&mut s, Op::DeleteService(tcp("10.0.0.2", 80))));
    assert_eq!(e.errno, 3);
    assert_eq!(e.op, Some(Op::DeleteService(tcp("10.0.0.2", 80))));
    assert_eq!(e.line, None);

    ok(&mut s, Op::DeleteService(web));
    assert_eq!(list(&mut s).len(), 1);
    ok(&mut s, Op::Flush);
    assert!(list(&mut s).is_empty());
}

#[test]
fn dests_add_edit_delete_and_errnos() {
    let mut s = populated();
    let web = tcp("10.0.0.1", 80);
    let missing = tcp("10.0.0.9", 80);

    assert_eq!(
        errno(&apply(&mut s, add_dest(missing, dest("1.1.1.1", 80)))),
        3
    );
    assert_eq!(
        errno(&apply(&mut s, add_dest(web, dest("192.168.1.10", 80)))),
        17
    );
    let mut d = dest("192.168.1.12", 80);
    d.l_threshold = 10;
    d.u_threshold = 5;
    assert_eq!(errno(&apply(&mut s, add_dest(web, d))), 34);
    let mut d = dest("192.168.1.12", 80);
    d.weight = u32::MAX;
    assert_eq!(errno(&apply(&mut s, add_dest(web, d))), 34);
    assert_eq!(
        errno(&apply(&mut s, add_dest(web, dest("2001:db8::5", 80)))),
        22
    );
    assert_eq!(
        errno(&apply(&mut s, add_dest(web, dest("0.0.0.0", 80)))),
        22
    );
    let mut gue = dest("192.168.1.12", 80);
    gue.fwd = Fwd::Tunnel;
    gue.tunnel.kind = TunKind::Gue;
    assert_eq!(errno(&apply(&mut s, add_dest(web, gue))), 22);
    let mut local = dest("192.168.1.12", 80);
    local.fwd = Fwd::Local;
    assert_eq!(errno(&apply(&mut s, add_dest(web, local))), 22);
    // Mixed family is fine when tunnelling.
    let mut v6t = dest("2001:db8::5", 80);
    v6t.fwd = Fwd::Tunnel;
    v6t.tunnel = TunnelSpec {
        kind: TunKind::Gue,
        port: 6080,
        flags: 1,
    };
    ok(&mut s, add_dest(web, v6t));

    // Edit.
    let mut e = dest("192.168.1.10", 80);
    e.fwd = Fwd::Masq;
    e.weight = 5;
    e.u_threshold = 100;
    e.l_threshold = 50;
    ok(
        &mut s,
        Op::EditDest {
            service: web,
            dest: e,
        },
    );
    let l = list(&mut s);
    let got = l[0].dests.iter().find(|d| d.spec.addr == e.addr).unwrap();
    assert_eq!(got.spec, e);
    assert_eq!(l[0].dests[0].spec, v6t);
    let r = apply(
        &mut s,
        Op::EditDest {
            service: web,
            dest: dest("192.168.1.99", 80),
        },
    );
    assert_eq!(errno(&r), 2);
    let r = apply(
        &mut s,
        Op::EditDest {
            service: missing,
            dest: e,
        },
    );
    assert_eq!(errno(&r), 3);

    // Delete.
    let del = |addr: &str, service| Op::DeleteDest {
        service,
        addr: v4(addr),
        port: 80,
    };
    ok(&mut s, del("192.168.1.10", web));
    assert_eq!(errno(&apply(&mut s, del("192.168.1.10", web))), 2);
    assert_eq!(errno(&apply(&mut s, del("192.168.1.11", missing))), 3);
    assert_eq!(list(&mut s)[0].dests.len(), 2);
}

#[test]
fn zero_and_timeouts() {
    let mut s = populated();
    ok(&mut s, Op::Zero(None));
    ok(&mut s, Op::Zero(Some(tcp("10.0.0.1", 80))));
    assert_eq!(
        errno(&apply(&mut s, Op::Zero(Some(tcp("10.0.0.9", 80))))),
        3
    );

    assert_eq!(
        s.handle(&ROOT, Request::GetTimeouts, T0),
        Reply::Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
    ok(
        &mut s,
        Op::SetTimeouts {
            tcp: 3600,
            tcpfin: 0,
            udp: 60,
        },
    );
    assert_eq!(
        s.handle(&ROOT, Request::GetTimeouts, T0),
        Reply::Timeouts {
            tcp: 3600,
            tcpfin: 120,
            udp: 60
        }
    );
    let r = apply(
        &mut s,
        Op::SetTimeouts {
            tcp: 0,
            tcpfin: u32::MAX,
            udp: 0,
        },
    );
    assert_eq!(errno(&r), 22);
}

fn daemon(role: DaemonRole, ifn: &str) -> DaemonSpec {
    DaemonSpec {
        role,
        mcast_ifn: ifn.into(),
        syncid: 3,
        maxlen: 0,
        group: None,
        port: 0,
        ttl: 0,
    }
}

#[test]
fn sync_daemons() {
    let mut s = state();
    assert_eq!(
        s.handle(&ROOT, Request::ListDaemons, T0),
        Reply::Daemons(vec![])
    );
    assert_eq!(errno(&apply(&mut s, Op::StopDaemon(DaemonRole::Master))), 3);
    ok(&mut s, Op::StartDaemon(daemon(DaemonRole::Backup, "eth0")));
    ok(&mut s, Op::StartDaemon(daemon(DaemonRole::Master, "eth0")));
    let e = error(apply(
        &mut s,
        Op::StartDaemon(daemon(DaemonRole::Master, "lo")),
    ));
    assert_eq!(e.errno, 17);
    assert_eq!(
        errno(&apply(
            &mut s,
            Op::StartDaemon(daemon(DaemonRole::Master, "nope9"))
        )),
        17,
        "EEXIST is checked before the interface"
    );
    match s.handle(&ROOT, Request::ListDaemons, T0) {
        Reply::Daemons(d) => {
            assert_eq!(d.len(), 2);
            assert_eq!(d[0].spec.role, DaemonRole::Master);
            assert_eq!(d[0].spec.maxlen, 1472);
            assert_eq!(d[0].spec.port, 8848);
            assert_eq!(d[0].spec.ttl, 1);
            assert_eq!(d[0].spec.group, Some(v4("224.0.0.81")));
            assert_eq!(d[1].spec.role, DaemonRole::Backup);
        }
        other => panic!("{other:?}"),
    }
    ok(&mut s, Op::StopDaemon(DaemonRole::Master));
    assert_eq!(
        errno(&apply(
            &mut s,
            Op::StartDaemon(daemon(DaemonRole::Master, "nope9"))
        )),
        19
    );
}

#[test]
fn unprivileged_peers_get_eperm_and_change_nothing() {
    let mut s = populated();
    let before = dump(&mut s);
    let reqs = vec![
        Request::Info,
        Request::Apply(Op::Flush),
        Request::Apply(Op::AddService(spec(tcp("10.0.0.5", 80), "rr"))),
        Request::Apply(Op::StartDaemon(daemon(DaemonRole::Master, "eth0"))),
        Request::Batch(vec![BatchLine {
            line: 1,
            op: Op::Flush,
        }]),
        Request::ListServices,
        Request::GetService(tcp("10.0.0.1", 80)),
        Request::GetTimeouts,
        Request::ListDaemons,
        Request::ListConns,
    ];
    for r in reqs {
        let reply = s.handle(&NOBODY, r.clone(), T0);
        assert_eq!(errno(&reply), 1, "{r:?}");
    }
    assert_eq!(dump(&mut s), before);
    // The credential rule itself: see auth.rs's tests.
}

fn lines(ops: Vec<Op>) -> Vec<BatchLine> {
    // Line numbers as in a restore file with a comment on line 1.
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| BatchLine { line: i + 2, op })
        .collect()
}

#[test]
fn batch_is_atomic() {
    let mut s = populated();
    let before = dump(&mut s);
    let web = tcp("10.0.0.1", 80);
    let new = tcp("10.0.0.2", 443);
    let bad = add_dest(new, dest("192.168.1.10", 443));
    let batch = lines(vec![
        Op::AddService(spec(new, "wrr")),
        add_dest(new, dest("192.168.1.10", 443)),
        Op::DeleteDest {
            service: web,
            addr: v4("192.168.1.10"),
            port: 80,
        },
        Op::SetTimeouts {
            tcp: 10,
            tcpfin: 10,
            udp: 10,
        },
        Op::StartDaemon(daemon(DaemonRole::Master, "eth0")),
        Op::Zero(None),
        bad.clone(),
        Op::Flush,
    ]);
    let e = error(s.handle(&ROOT, Request::Batch(batch), T0));
    assert_eq!(e.errno, 17);
    assert_eq!(e.line, Some(8));
    assert_eq!(e.op, Some(bad));
    assert_eq!(dump(&mut s), before);

    // A daemon error after engine changes: nothing either.
    let batch = lines(vec![
        Op::AddService(spec(new, "wrr")),
        Op::StopDaemon(DaemonRole::Backup),
        Op::Flush,
    ]);
    let e = error(s.handle(&ROOT, Request::Batch(batch), T0));
    assert_eq!((e.errno, e.line), (3, Some(3)));
    assert_eq!(dump(&mut s), before);

    // An engine error after a daemon start: the daemon is not started.
    let batch = lines(vec![
        Op::StartDaemon(daemon(DaemonRole::Master, "eth0")),
        Op::DeleteService(new),
    ]);
    let e = error(s.handle(&ROOT, Request::Batch(batch), T0));
    assert_eq!((e.errno, e.line), (3, Some(3)));
    assert_eq!(dump(&mut s), before);

    // A line that cannot even be converted.
    let mut local = dest("192.168.1.12", 80);
    local.fwd = Fwd::Local;
    let batch = lines(vec![Op::Flush, add_dest(web, local)]);
    let e = error(s.handle(&ROOT, Request::Batch(batch), T0));
    assert_eq!((e.errno, e.line), (22, Some(3)));
    assert_eq!(dump(&mut s), before);

    // All good: everything applies, in order.
    let batch = lines(vec![
        Op::Flush,
        Op::AddService(spec(new, "wrr")),
        add_dest(new, dest("192.168.1.10", 443)),
        Op::DeleteService(new),
        Op::AddService(spec(new, "lc")),
        Op::StartDaemon(daemon(DaemonRole::Master, "eth0")),
        Op::StopDaemon(DaemonRole::Master),
        Op::StartDaemon(daemon(DaemonRole::Backup, "eth0")),
    ]);
    assert_eq!(s.handle(&ROOT, Request::Batch(batch), T0), Reply::Ok);
    let l = list(&mut s);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].spec.scheduler, "lc");
    assert!(l[0].dests.is_empty());
    match s.handle(&ROOT, Request::ListDaemons, T0) {
        Reply::Daemons(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].spec.role, DaemonRole::Backup);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.handle(&ROOT, Request::Batch(vec![]), T0), Reply::Ok);
}

#[test]
fn protocol_errors() {
    let mut s = populated();
    let before = dump(&mut s);
    let good = encode(&Envelope {
        version: PROTOCOL_VERSION,
        request: Request::Info,
    });
    let good = &good[..good.len() - 1];
    assert!(matches!(s.handle_line(&ROOT, good, T0), Reply::Info { .. }));

    let e = error(s.handle_line(&ROOT, b"{nope", T0));
    assert_eq!(e.errno, 22);
    assert!(e.message.contains("malformed"), "{}", e.message);
    let e = error(s.handle_line(&ROOT, b"", T0));
    assert_eq!(e.errno, 22);
    let e = error(s.handle_line(&ROOT, br#"{"version":1,"request":"Bogus"}"#, T0));
    assert_eq!(e.errno, 22);
    assert!(e.message.contains("malformed"), "{}", e.message);

    let e = error(s.handle_line(&ROOT, br#"{"version":2,"request":"Info"}"#, T0));
    assert_eq!(e.errno, 22);
    assert!(e.message.contains("version 2"), "{}", e.message);
    // Another version with a request this one does not know: still a version error.
    let e = error(s.handle_line(&ROOT, br#"{"version":7,"request":{"New":1}}"#, T0));
    assert!(e.message.contains("version 7"), "{}", e.message);
    let flush = br#"{"version":0,"request":{"Apply":"Flush"}}"#;
    assert_eq!(errno(&s.handle_line(&ROOT, flush, T0)), 22);
    assert_eq!(dump(&mut s), before);
}

#[test]
fn connections_and_templates_are_listed() {
    let mut s = state();
    let mut persist = spec(ServiceId::Fwmark { v6: false, mark: 5 }, "rr");
    persist.flags = SVC_F_PERSISTENT;
    persist.timeout = 300;
    ok(&mut s, Op::AddService(persist));
    ok(
        &mut s,
        add_dest(
            ServiceId::Fwmark { v6: false, mark: 5 },
            dest("192.168.1.10", 0),
        ),
    );
    let mut e = s.engine();
    send_syn(&mut e, [172, 16, 0, 5], 5, &["172.16.0.5", "192.168.1.10"]);
    drop(e);
    let conns = match s.handle(&ROOT, Request::ListConns, Instant::from_secs(1)) {
        Reply::Conns(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(conns.len(), 2, "{conns:?}");
    let tmpl = conns.iter().find(|c| c.proto == 0).unwrap();
    assert_eq!(tmpl.state, "NONE");
    assert_eq!(tmpl.vaddr, v4("0.0.0.5"));
    assert_eq!(tmpl.daddr, v4("192.168.1.10"));
    assert_eq!(tmpl.expire_secs, 300);
    assert_ne!(tmpl.flags & 0x1000, 0);
    let c = conns.iter().find(|c| c.proto == 6).unwrap();
    assert_eq!(c.state, "SYN_RECV");
    assert_eq!((c.caddr, c.cport), (v4("172.16.0.5"), 40000));
    assert_eq!((c.vaddr, c.vport), (v4("10.0.0.1"), 80));
    assert_eq!((c.daddr, c.dport), (v4("192.168.1.10"), 80));
    assert!(c.expire_secs <= 60);
    assert_eq!(c.pe, None);
    // Counters show up in the listing.
    let l = list(&mut s);
    assert_eq!(l[0].stats.conns, 1);
    assert_eq!((l[0].dests[0].active, l[0].dests[0].inactive), (1, 0));
    assert_eq!(l[0].dests[0].persist, 1);
}

/// An Ethernet + IPv4 + TCP SYN frame with valid checksums.
fn syn_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xc, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let mut pseudo: u32 = 6 + 20;
    for w in src.chunks(2).chain(dst.chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let c = checksum(&tcp, pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for w in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn sysctls_by_kernel_name_all_or_none() {
    let mut s = state();
    let now = Instant::from_secs(1);
    let Reply::Sysctls(all) = s.handle(&ROOT, Request::GetSysctls, now) else {
        panic!("no sysctls")
    };
    let get = |all: &[rvs_proto::SysctlValue], n: &str| {
        all.iter()
            .find(|v| v.name == format!("net.ipv4.vs.{n}"))
            .map(|v| v.value.clone())
    };
    assert_eq!(get(&all, "sloppy_tcp").as_deref(), Some("0"));
    assert_eq!(get(&all, "amemthresh").as_deref(), Some("1024"));
    let set = |pairs: &[(&str, &str)]| {
        Request::SetSysctls(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    };
    // One bad line: nothing is set, and the error names it.
    let r = s.handle(
        &ROOT,
        set(&[("net.ipv4.vs.sloppy_tcp", "1"), ("drop_entry", "3")]),
        now,
    );
    let Reply::Error(e) = r else {
        panic!("accepted: {r:?}")
    };
    assert_eq!(e.errno, 22);
    assert!(
        e.message.contains("net.ipv4.vs.drop_entry"),
        "{}",
        e.message
    );
    assert!(!s.engine().sysctls().sloppy_tcp);
    // Unprivileged: refused.
    assert!(matches!(
        s.handle(&NOBODY, set(&[("sloppy_tcp", "1")]), now),
        Reply::Error(_)
    ));
    assert_eq!(
        s.handle(
            &ROOT,
            set(&[("net.ipv4.vs.sloppy_tcp", "1"), ("expire_nodest_conn", "1")]),
            now
        ),
        Reply::Ok
    );
    let sc = *s.engine().sysctls();
    assert!(sc.sloppy_tcp && sc.expire_nodest_conn);
    let Reply::Sysctls(all) = s.handle(&ROOT, Request::GetSysctls, now) else {
        panic!("no sysctls")
    };
    assert_eq!(get(&all, "sloppy_tcp").as_deref(), Some("1"));
}

/// `n` connections in the table (as a sync backup or a restart takes
/// them: no service needed).
fn add_dr_service_with_conns(s: &mut State, n: u32) {
    use rvs_wire::ipvs_sync::{SyncAddrs, SyncConn};
    for i in 0..n {
        let e = SyncConn {
            protocol: 6,
            flags: 3,
            state: 1,
            cport: 1024 + i as u16,
            vport: 80,
            dport: 80,
            addrs: SyncAddrs::V4 {
                caddr: [172, 16, 0, 5].into(),
                vaddr: [10, 0, 0, 1].into(),
                daddr: [192, 168, 1, 10].into(),
            },
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        s.engine().restore_conn(&e, Instant::from_secs(1));
    }
}

#[test]
fn conns_listed_in_chunks_are_the_whole_table() {
    let mut s = state();
    add_dr_service_with_conns(&mut s, 1000);
    let now = Instant::from_secs(1);
    let whole = match s.handle(&ROOT, Request::ListConns, now) {
        Reply::Conns(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(whole.len(), 1000);
    for chunk in [1, 7, 999, 1000, 1001] {
        let (mut out, mut from) = (Vec::new(), 0);
        while let Some(n) = s.conns_chunk(from, chunk, now, &mut out) {
            from = n;
        }
        assert_eq!(out, whole, "chunks of {chunk}");
    }
}

/// Give `e` a port and next hops for `hops`, and send it a SYN from
/// `client` to 10.0.0.1:80 marked `fwmark`: what it does with it.
fn send_syn(e: &mut Engine, client: [u8; 4], fwmark: u32, hops: &[&str]) -> rvs_core::Action {
    use rvs_wire::EthernetAddress;
    e.set_port(
        PortId(0),
        PortConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            addr_v4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            addr_v6: None,
        },
    );
    for a in hops {
        e.set_hop(
            v4(a),
            Hop {
                port: PortId(0),
                mac: EthernetAddress([2, 0, 0, 0, 0, 9]),
            },
        );
    }
    let mut buf = syn_frame(client, 40000, [10, 0, 0, 1], 80);
    let len = buf.len();
    e.process(
        Frame {
            buf: &mut buf,
            start: 0,
            len,
            ingress: PortId(0),
            fwmark,
        },
        Instant::from_secs(1),
    )
}

/// [`send_syn`], unmarked, which `e` must forward.
fn forward_syn(e: &mut Engine, client: [u8; 4], hops: &[&str]) {
    let a = send_syn(e, client, 0, hops);
    assert!(matches!(a, rvs_core::Action::Forward { .. }), "{a:?}");
}

/// Listings read statistics without the engine's locks: a worker holding
/// its replica (mid-batch) keeps no listing or scrape waiting, and what it
/// counted is in the listing; its engine counters once it lets go.
#[test]
fn listings_read_statistics_while_workers_hold_their_replicas() {
    let mut s = state();
    let web = tcp("10.0.0.1", 80);
    ok(&mut s, Op::AddService(spec(web, "rr")));
    ok(&mut s, add_dest(web, dest("192.168.1.10", 80)));
    s.replicate_engines(2);
    let engines = std::sync::Arc::clone(s.engines());
    assert_eq!(engines.services()[0].stats.conns, 0);
    // Both replicas held, as two workers in the middle of a batch.
    let mut held = engines.lock_all();
    for (e, client) in held.iter_mut().zip([[172, 16, 0, 5], [172, 16, 0, 6]]) {
        forward_syn(e, client, &["192.168.1.10"]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::sync::Arc::clone(&engines);
    let t = std::thread::spawn(move || {
        let _ = tx.send((reader.services(), reader.stats().0, reader.counters()));
    });
    let (svcs, total, counters) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a listing waited for a locked replica");
    t.join().unwrap();
    assert_eq!(svcs[0].stats.conns, 2);
    assert_eq!(svcs[0].stats.inpkts, 2);
    assert_eq!(svcs[0].dests[0].stats.conns, 2);
    assert_eq!(svcs[0].dests[0].active + svcs[0].dests[0].inactive, 2);
    assert_eq!(total.conns, 2);
    // The engine's counters are published when a replica is let go.
    assert_eq!(counters.conns, 0);
    drop(held);
    assert_eq!(engines.counters().conns, 2);
}

/// `--engines per-worker`: every replica takes every change, listings sum
/// the replicas' counts and join their connections (chunk by chunk too).
#[test]
fn per_worker_replicas_take_changes_and_listings_sum_them() {
    let mut s = state();
    let web = tcp("10.0.0.1", 80);
    ok(&mut s, Op::AddService(spec(web, "rr")));
    ok(&mut s, add_dest(web, dest("192.168.1.10", 80)));
    s.replicate_engines(3);
    assert_eq!(s.engines().len(), 3);
    ok(&mut s, add_dest(web, dest("192.168.1.11", 80)));
    for i in 0..3 {
        let e = s.engines().lock(i);
        let svc = e.services().iter().next().unwrap().1;
        assert_eq!(svc.dests.len(), 2, "replica {i}");
    }
    // Connections in two replicas: through each one's own packets.
    for (i, client) in [(0usize, [172, 16, 0, 5]), (2, [172, 16, 0, 6])] {
        forward_syn(
            &mut s.engines().lock(i),
            client,
            &["192.168.1.10", "192.168.1.11"],
        );
    }
    let svcs = s.services();
    assert_eq!(svcs.len(), 1);
    assert_eq!(svcs[0].stats.conns, 2);
    let inact: u32 = svcs[0].dests.iter().map(|d| d.inactive + d.active).sum();
    assert_eq!(inact, 2);
    match s.handle(&ROOT, Request::ListConns, Instant::from_secs(1)) {
        Reply::Conns(c) => assert_eq!(c.len(), 2),
        other => panic!("{other:?}"),
    }
    // Chunked, one at a time: both, then the end.
    let (mut from, mut out) = (Some(0u64), Vec::new());
    let mut rounds = 0;
    while let Some(f) = from {
        from = s.conns_chunk(f, 1, Instant::from_secs(1), &mut out);
        rounds += 1;
        assert!(rounds < 10);
    }
    assert_eq!(out.len(), 2);
    match s.handle(&ROOT, Request::GlobalStats, Instant::from_secs(1)) {
        Reply::GlobalStats { stats, .. } => assert_eq!(stats.conns, 2),
        other => panic!("{other:?}"),
    }
    // A change the first replica refuses changes none.
    assert_eq!(errno(&apply(&mut s, Op::AddService(spec(web, "rr")))), 17);
}
