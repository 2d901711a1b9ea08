//! `rvs demo`: drive the engine with simulated clients and servers.
//!
//! Until the data plane exists this is the quickest way to watch rvs decide:
//! it builds a director engine with one virtual service and N real servers,
//! plays whole TCP conversations (handshake, a request, the reply for NAT,
//! close) from a simulated client, and prints which real server took each
//! connection, what the frame looked like after the rewrite, and the
//! counters. No packet leaves the process.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

const HEADROOM: usize = 64;
const CLIENT_SIDE: PortId = PortId(0);
const SERVER_SIDE: PortId = PortId(1);
const DIRECTOR_MAC: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 1, 1]];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CIP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 5);

/// Options of `rvs demo`.
#[derive(Debug, Clone)]
pub struct DemoOpts {
    /// Forwarding modes to show.
    pub modes: Vec<FwdMethod>,
    /// Number of real servers.
    pub servers: u8,
    /// Scheduler name.
    pub scheduler: String,
    /// Connections per mode.
    pub requests: u32,
}

fn rs_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, 11 + i)
}

fn rs_mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 1, 0x11 + i]
}

fn build(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1, 65535);
    let b = match flags {
        "S" => b.syn(),
        "SA" => b.syn().ack(1),
        "FA" => b.fin().ack(1),
        _ => b.ack(1),
    };
    let mut v = vec![0u8; HEADROOM];
    // Writing into a Vec cannot fail.
    b.write(&mut v, payload).expect("write to Vec");
    v
}

fn send(e: &mut Engine, buf: &mut [u8], ingress: PortId, now: Instant) -> (Action, Vec<u8>) {
    let len = buf.len() - HEADROOM;
    let a = e.process(
        Frame {
            buf,
            start: HEADROOM,
            len,
            ingress,
            fwmark: 0,
        },
        now,
    );
    let out = match a {
        Action::Forward { start, len, .. } => buf[start..start + len].to_vec(),
        _ => Vec::new(),
    };
    (a, out)
}

/// One line describing a forwarded frame: MACs, addresses, outer header.
fn describe(frame: &[u8]) -> String {
    let mut s = String::new();
    let dst_mac = EthernetAddress(frame[0..6].try_into().unwrap_or([0; 6]));
    let _ = write!(s, "dst MAC {dst_mac}");
    if let Ok(p) = SlicedPacket::from_ethernet(frame) {
        if let Some(NetSlice::Ipv4(ip)) = &p.net {
            let h = ip.header();
            if h.protocol() == etherparse::IpNumber::IPV4 {
                let _ = write!(
                    s,
                    ", outer IPIP {} -> {}",
                    h.source_addr(),
                    h.destination_addr()
                );
                if let Ok(inner) = etherparse::Ipv4HeaderSlice::from_slice(ip.payload().payload) {
                    let _ = write!(
                        s,
                        ", inner {} -> {}",
                        inner.source_addr(),
                        inner.destination_addr()
                    );
                }
                return s;
            }
            let _ = write!(s, ", IP {} -> {}", h.source_addr(), h.destination_addr());
        }
        if let Some(TransportSlice::Tcp(t)) = &p.transport {
            let _ = write!(s, ", TCP {} -> {}", t.source_port(), t.destination_port());
        }
    }
    s
}

fn engine(opts: &DemoOpts, fwd: FwdMethod) -> Result<(Engine, ServiceKey), String> {
    let mut e = Engine::new(EngineConfig::default());
    for (i, port) in [CLIENT_SIDE, SERVER_SIDE].into_iter().enumerate() {
        e.set_port(
            port,
            PortConfig {
                mac: EthernetAddress(DIRECTOR_MAC[i]),
                mtu: 1500,
                addr_v4: Some(if i == 0 {
                    Ipv4Addr::new(10, 0, 0, 2)
                } else {
                    Ipv4Addr::new(192, 168, 1, 1)
                }),
                addr_v6: None,
            },
        );
    }
    e.set_hop(
        IpAddr::V4(CIP),
        Hop {
            port: CLIENT_SIDE,
            mac: EthernetAddress(CLIENT_MAC),
        },
    );
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = opts.scheduler.clone();
    e.add_service(key, cfg)
        .map_err(|err| format!("scheduler {:?}: {err}", opts.scheduler))?;
    for i in 0..opts.servers {
        let addr = IpAddr::V4(rs_addr(i));
        let mut d = DestConfig::new(addr, if fwd == FwdMethod::Masq { 8080 } else { 80 });
        d.fwd = fwd;
        d.weight = 1 + u32::from(i);
        e.add_dest(&key, &d, Instant::ZERO)
            .map_err(|err| format!("real server {addr}: {err}"))?;
        e.set_hop(
            addr,
            Hop {
                port: SERVER_SIDE,
                mac: EthernetAddress(rs_mac(i)),
            },
        );
    }
    Ok((e, key))
}

/// Run the demo and return its report.
pub fn run(opts: &DemoOpts) -> Result<String, String> {
    let mut out = String::new();
    for &fwd in &opts.modes {
        let (mut e, key) = engine(opts, fwd)?;
        let name = match fwd {
            FwdMethod::Route => "DR (-g)",
            FwdMethod::Masq => "NAT (-m)",
            FwdMethod::Tunnel => "TUN (-i)",
        };
        let _ = writeln!(
            out,
            "== {name}: -A -t {VIP}:80 -s {}; {} real servers with weights 1..{}",
            opts.scheduler, opts.servers, opts.servers
        );
        let mut now = Instant::from_secs(1);
        for r in 0..opts.requests {
            let cport = 40000 + (r % 20000) as u16;
            let client = (CIP, cport);
            let vip = (VIP, 80);
            let mut syn = build(CLIENT_MAC, DIRECTOR_MAC[0], client, vip, "S", b"");
            let (a, fwd_frame) = send(&mut e, &mut syn, CLIENT_SIDE, now);
            let Action::Forward { .. } = a else {
                let _ = writeln!(out, "request {:>3}: {CIP}:{cport} -> {a:?}", r + 1);
                continue;
            };
            let conn = e
                .conns()
                .lookup_in(6, &IpAddr::V4(CIP), cport, &IpAddr::V4(VIP), 80)
                .and_then(|id| e.conns().get(id))
                .map(|c| format!("{}:{}", c.daddr, c.dport))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "request {:>3}: {CIP}:{cport} -> {VIP}:80 => {conn:<18} [{}]",
                r + 1,
                describe(&fwd_frame)
            );
            let mut req = build(
                CLIENT_MAC,
                DIRECTOR_MAC[0],
                client,
                vip,
                "A",
                b"GET / HTTP/1.0\r\n\r\n",
            );
            send(&mut e, &mut req, CLIENT_SIDE, now);
            if fwd == FwdMethod::Masq {
                // The real server's reply comes back through the director.
                if let Some((ip, port)) = conn
                    .split_once(':')
                    .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u16>().ok()?)))
                {
                    let i = ip.octets()[3] - 11;
                    let mut rep = build(
                        rs_mac(i),
                        DIRECTOR_MAC[1],
                        (ip, port),
                        client,
                        "A",
                        b"HTTP/1.0 200 OK\r\n\r\n",
                    );
                    send(&mut e, &mut rep, SERVER_SIDE, now);
                }
            }
            let mut fin = build(CLIENT_MAC, DIRECTOR_MAC[0], client, vip, "FA", b"");
            send(&mut e, &mut fin, CLIENT_SIDE, now);
            now = now + std::time::Duration::from_millis(10);
        }
        e.poll(now);
        out.push_str(&stats_table(&e, &key));
        out.push('\n');
    }
    Ok(out)
}

fn stats_table(e: &Engine, key: &ServiceKey) -> String {
    let mut s = String::new();
    let Some(svc) = e.services().find(key).and_then(|r| e.services().get(r)) else {
        return s;
    };
    let _ = writeln!(
        s,
        "{:<24} {:<8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8} {:>7} {:>8}",
        "real server",
        "forward",
        "weight",
        "active",
        "inact",
        "conns",
        "inpkts",
        "inbytes",
        "outpkts",
        "outbytes"
    );
    for d in svc.dests.iter().rev() {
        let c = d.stats.shown();
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8} {:>7} {:>8}",
            format!("{}:{}", d.addr, d.port),
            d.fwd.name(),
            d.weight,
            d.activeconns,
            d.inactconns,
            c.conns,
            c.inpkts,
            c.inbytes,
            c.outpkts,
            c.outbytes
        );
    }
    let t = svc.stats.shown();
    let _ = writeln!(
        s,
        "service total: {} connections, {} packets in, {} packets out; {} entries in the connection table",
        t.conns,
        t.inpkts,
        t.outpkts,
        e.conns().len()
    );
    s
}
