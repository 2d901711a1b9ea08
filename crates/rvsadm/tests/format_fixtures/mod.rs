//! Hand-built tables shared by the `format_*` tests, and a fixed resolver.
//!
//! Vectors are in the daemon's order (what `--nosort` shows): services
//! newest first, destinations newest first.

#![allow(dead_code)]

use std::net::IpAddr;

use rvs_proto::{
    ConnInfo, DaemonInfo, DaemonRole, DaemonSpec, DestInfo, DestSpec, Fwd, Proto, Rates,
    SVC_F_HASHED, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3,
    ServiceId, ServiceInfo, ServiceSpec, Stats, TUN_F_CSUM, TUN_F_REMCSUM, TunKind, TunnelSpec,
};
use rvsadm::format::Resolver;

/// Makes trailing spaces and the final newline visible in snapshots (insta
/// trims trailing whitespace at the end of a snapshot): every line end is
/// shown as `$`, like `cat -E`.
pub fn visible(s: &str) -> String {
    s.replace('\n', "$\n")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A resolver with fixed answers.
#[derive(Debug)]
pub struct Fake;

impl Resolver for Fake {
    fn host(&self, addr: IpAddr) -> Option<String> {
        let name = match addr.to_string().as_str() {
            "10.0.0.1" => "www.example.com",
            "10.0.0.2" => "a-rather-long-virtual-host-name.example.org",
            "192.168.1.10" => "real-server-number-ten.backend.example.net",
            "192.168.1.11" => "rs11.example.net",
            "2001:db8::1" => "v6.example.com",
            "2001:db8::10" => "a-very-long-ipv6-real-server-name.backend.example.net",
            "172.16.0.5" => "client.example.com",
            _ => return None,
        };
        Some(name.into())
    }

    fn service(&self, port: u16, proto: &str) -> Option<String> {
        let name = match (port, proto) {
            (80, "tcp") => "http",
            (443, "tcp" | "sctp") => "https",
            (53, "tcp" | "udp") => "domain",
            (5060, "tcp" | "udp") => "sip",
            (5353, "udp") => "mdns",
            (8080, "tcp") => "http-alt",
            _ => return None,
        };
        Some(name.into())
    }
}

pub fn addr_id(proto: Proto, addr: &str, port: u16) -> ServiceId {
    ServiceId::Addr {
        proto,
        addr: ip(addr),
        port,
    }
}

pub fn fwm(mark: u32, v6: bool) -> ServiceId {
    ServiceId::Fwmark { v6, mark }
}

/// A service: non-persistent, full netmask for its family, no PE.
pub fn svc(id: ServiceId, sched: &str) -> ServiceInfo {
    ServiceInfo {
        spec: ServiceSpec {
            id,
            scheduler: sched.into(),
            flags: SVC_F_HASHED,
            timeout: 0,
            netmask: if id.is_v6() { 128 } else { 0xffff_ffff },
            pe: None,
        },
        stats: Stats::default(),
        rates: Rates::default(),
        dests: Vec::new(),
    }
}

pub fn persistent(mut s: ServiceInfo, timeout: u32, netmask: u32) -> ServiceInfo {
    s.spec.flags |= SVC_F_PERSISTENT;
    s.spec.timeout = timeout;
    s.spec.netmask = netmask;
    s
}

pub fn flags(mut s: ServiceInfo, f: u32) -> ServiceInfo {
    s.spec.flags |= f;
    s
}

pub fn pe(mut s: ServiceInfo, name: &str) -> ServiceInfo {
    s.spec.pe = Some(name.into());
    s
}

pub fn with_dests(mut s: ServiceInfo, dests: Vec<DestInfo>) -> ServiceInfo {
    s.dests = dests;
    s
}

pub fn dest(addr: &str, port: u16, fwd: Fwd, weight: u32) -> DestInfo {
    DestInfo {
        spec: DestSpec {
            addr: ip(addr),
            port,
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelSpec::default(),
        },
        active: 0,
        inactive: 0,
        persist: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

pub fn conns(mut d: DestInfo, active: u32, inactive: u32, persist: u32) -> DestInfo {
    d.active = active;
    d.inactive = inactive;
    d.persist = persist;
    d
}

pub fn tunnel(mut d: DestInfo, kind: TunKind, port: u16, flags: u16) -> DestInfo {
    d.spec.tunnel = TunnelSpec { kind, port, flags };
    d
}

pub fn stats(conns: u64, inpkts: u64, outpkts: u64, inbytes: u64, outbytes: u64) -> Stats {
    Stats {
        conns,
        inpkts,
        outpkts,
        inbytes,
        outbytes,
    }
}

pub fn rates(cps: u64, inpps: u64, outpps: u64, inbps: u64, outbps: u64) -> Rates {
    Rates {
        cps,
        inpps,
        outpps,
        inbps,
        outbps,
    }
}

/// The big table, in the daemon's order (newest first).
// One commented push per service reads better than one huge `vec![]`.
#[allow(clippy::vec_init_then_push)]
pub fn big_table() -> Vec<ServiceInfo> {
    use Fwd::*;
    use Proto::*;

    let mut t = Vec::new();

    // IPv6 fwmark, mh with mh-fallback, persistent with a /64.
    t.push(with_dests(
        persistent(flags(svc(fwm(2, true), "mh"), SVC_F_SCHED1), 300, 64),
        vec![
            dest("2001:db8::21", 0, Route, 1),
            dest("2001:db8::20", 0, Route, 1),
        ],
    ));

    // The sort quirk: 200.0.0.1 sorts before 10.0.0.1; the dests form a
    // non-transitive cycle (10 > 200 > 100 > 10).
    t.push(with_dests(
        svc(addr_id(Tcp, "200.0.0.1", 80), "wrr"),
        vec![
            dest("10.0.1.5", 80, Route, 3),
            dest("200.0.1.5", 80, Route, 3),
            dest("100.0.1.5", 80, Route, 1),
        ],
    ));

    // SIP persistence over IPv6 UDP.
    t.push(with_dests(
        pe(
            persistent(svc(addr_id(Udp, "2001:db8::1", 5060), "rr"), 360, 128),
            "sip",
        ),
        vec![conns(dest("2001:db8::30", 5060, Masq, 1), 0, 4, 2)],
    ));

    // IPv4 fwmark, sh with both flags, persistent; every tunnel flavour.
    t.push(with_dests(
        persistent(
            flags(svc(fwm(1, false), "sh"), SVC_F_SCHED1 | SVC_F_SCHED2),
            360,
            0xffff_ffff,
        ),
        vec![
            tunnel(
                dest("192.168.1.15", 80, Tunnel, 2),
                TunKind::Gre,
                0,
                TUN_F_CSUM,
            ),
            tunnel(
                dest("192.168.1.14", 0, Tunnel, 1),
                TunKind::Gue,
                5555,
                TUN_F_REMCSUM,
            ),
            dest("192.168.1.13", 0, Tunnel, 1),
            tunnel(dest("192.168.1.12", 0, Tunnel, 1), TunKind::Gue, 6080, 0),
        ],
    ));

    // Port-0 persistent service with a netmask and generic flags; weight 0
    // and thresholds; big counters.
    let mut s = with_dests(
        persistent(
            flags(
                svc(addr_id(Tcp, "10.0.0.2", 0), "lc"),
                SVC_F_SCHED1 | SVC_F_SCHED3,
            ),
            600,
            0xffff_0000,
        ),
        vec![dest("192.168.2.2", 0, Route, 1), {
            let mut d = conns(dest("192.168.2.1", 0, Route, 0), 17, 230, 9);
            d.spec.u_threshold = 100;
            d.spec.l_threshold = 50;
            d
        }],
    );
    s.stats = stats(
        99_999_999,
        100_000_000,
        999_999_999,
        1_000_000_000,
        u64::MAX,
    );
    s.rates = rates(
        99_999_999,
        100_000_000,
        99_999_999_999,
        100_000_000_000_000,
        99_999_999_999_999,
    );
    t.push(s);

    // SCTP over IPv6, mh with mh-port, one-packet scheduling; a GRE dest
    // and an IPv4 dest in an IPv6 service.
    t.push(with_dests(
        flags(
            svc(addr_id(Sctp, "2001:db8::1", 443), "mh"),
            SVC_F_ONEPACKET | SVC_F_SCHED2,
        ),
        vec![
            dest("2001:db8::10", 443, Route, 5),
            tunnel(
                dest("2001:db8::9", 443, Tunnel, 1),
                TunKind::Gre,
                0,
                TUN_F_CSUM,
            ),
            dest("192.168.3.3", 443, Tunnel, 1),
        ],
    ));

    // UDP persistent with a netmask; weight 0.
    t.push(with_dests(
        persistent(svc(addr_id(Udp, "10.0.0.1", 53), "wlc"), 360, 0xffff_ff00),
        vec![conns(dest("192.168.1.20", 53, Masq, 0), 0, 7, 0)],
    ));

    // The plain TCP service with stats (a dest with counters past 2^32).
    let mut s = with_dests(
        svc(addr_id(Tcp, "10.0.0.1", 80), "rr"),
        vec![
            {
                let mut d = conns(dest("192.168.1.11", 80, Route, 2), 0, 0, 0);
                d.stats = stats(
                    5_000_000_000,
                    99_999_999,
                    100_000_000,
                    999_999_999_999,
                    100_000_000_000_000,
                );
                d.rates = rates(4_294_967_303, 123_456_789, 0, 5_000_000_000, 1_000_000);
                d
            },
            {
                let mut d = conns(dest("192.168.1.10", 80, Masq, 1), 3, 12, 4);
                d.stats = stats(15, 1_234_567, 0, 123_456_789, 98_765_432_101);
                d.rates = rates(2, 10, 8, 1200, 9000);
                d
            },
        ],
    );
    s.stats = stats(15, 1_234_567, 0, 123_456_789, 98_765_432_101);
    s.rates = rates(2, 10, 8, 1200, 9000);
    t.push(s);

    // A fwmark >= 2^31 sorts before every address service; sh with only
    // flag 3 prints an empty flag list.
    t.push(flags(svc(fwm(3_000_000_000, false), "sh"), SVC_F_SCHED3));

    // One-packet scheduling with a PE but no persistence (the PE shows in
    // -S only).
    t.push(with_dests(
        pe(
            flags(svc(addr_id(Udp, "10.0.0.3", 5060), "sed"), SVC_F_ONEPACKET),
            "sip",
        ),
        vec![dest("192.168.1.30", 5060, Masq, 65535)],
    ));

    // Newest: a TCP ops service on a named port.
    t.push(with_dests(
        flags(svc(addr_id(Tcp, "10.0.0.3", 8080), "nq"), SVC_F_ONEPACKET),
        vec![dest("192.168.1.31", 8080, Local, 1)],
    ));

    t.reverse(); // built oldest first above; the daemon lists newest first
    t
}

/// `IP_VS_CONN_F_TEMPLATE`.
pub const CONN_F_TEMPLATE: u32 = 0x1000;
/// `IP_VS_CONN_F_SYNC`.
pub const CONN_F_SYNC: u32 = 0x0020;

#[allow(clippy::too_many_arguments)]
pub fn conn(
    proto: u8,
    c: (&str, u16),
    v: (&str, u16),
    d: (&str, u16),
    state: &str,
    expire_secs: u64,
    flags: u32,
    pe: Option<(&str, &str)>,
) -> ConnInfo {
    ConnInfo {
        proto,
        caddr: ip(c.0),
        cport: c.1,
        vaddr: ip(v.0),
        vport: v.1,
        daddr: ip(d.0),
        dport: d.1,
        state: state.into(),
        expire_secs,
        flags,
        pe: pe.map(|(n, d)| (n.into(), d.into())),
    }
}

/// Connection entries in the kernel's (arbitrary) order.
pub fn conn_table() -> Vec<ConnInfo> {
    vec![
        conn(
            6,
            ("172.16.0.5", 51234),
            ("10.0.0.1", 80),
            ("192.168.1.10", 80),
            "ESTABLISHED",
            898,
            0,
            None,
        ),
        conn(
            0,
            ("172.16.0.5", 0),
            ("0.0.0.1", 0),
            ("192.168.1.12", 0),
            "NONE",
            359,
            CONN_F_TEMPLATE,
            None,
        ),
        conn(
            6,
            ("172.16.0.9", 0),
            ("10.0.0.2", 0),
            ("192.168.2.1", 0),
            "NONE",
            6000,
            CONN_F_TEMPLATE,
            None,
        ),
        conn(
            17,
            ("172.16.0.6", 5353),
            ("10.0.0.1", 53),
            ("192.168.1.20", 53),
            "UDP",
            299,
            CONN_F_SYNC,
            None,
        ),
        conn(
            132,
            ("2001:db8::100", 40000),
            ("2001:db8::1", 443),
            ("2001:db8::10", 443),
            "ESTABLISHED",
            10,
            0,
            None,
        ),
        conn(
            17,
            ("2001:db8::100", 5060),
            ("2001:db8::1", 5060),
            ("2001:db8::30", 5060),
            "NONE",
            180,
            CONN_F_TEMPLATE,
            Some(("sip", "a84b4c76e66710@pc33.atlanta.example.com")),
        ),
        conn(
            6,
            ("172.16.0.7", 40001),
            ("10.0.0.1", 80),
            ("2001:db8::50", 80),
            "SYN_RECV",
            55,
            0,
            None,
        ),
        conn(
            0,
            ("172.16.0.8", 0),
            ("0.0.0.1", 0),
            ("192.168.1.13", 0),
            "NONE",
            359_999,
            CONN_F_TEMPLATE | CONN_F_SYNC,
            None,
        ),
        conn(
            17,
            ("172.16.0.8", 53),
            ("10.0.0.1", 53),
            ("192.168.1.20", 53),
            "UDP",
            0,
            0,
            None,
        ),
    ]
}

pub fn daemon(
    role: DaemonRole,
    ifn: &str,
    syncid: u32,
    maxlen: u16,
    group: Option<&str>,
    port: u16,
    ttl: u8,
) -> DaemonInfo {
    DaemonInfo {
        spec: DaemonSpec {
            role,
            mcast_ifn: ifn.into(),
            syncid,
            maxlen,
            group: group.map(ip),
            port,
            ttl,
        },
    }
}
