//! A fuzz harness on stable Rust: `Engine::process` fed arbitrary and
//! mutated frames, with time moving and housekeeping running, must never
//! panic, and every frame it forwards must lie inside its buffer.
//!
//! cargo-fuzz needs a nightly toolchain, which this project's machines do
//! not have; this harness is deterministic instead (a seeded xorshift), so a
//! failure reproduces from its seed and iteration. The frames: a corpus of
//! valid ones for every protocol, forwarding method and direction (TCP
//! flags, UDP, SCTP chunks, ICMP errors quoting connections, IPv6, VLAN
//! tags, IPv4 options and fragments), then byte flips, truncations,
//! extensions, field splices and wholly random bytes. The engine has NAT,
//! DR and TUN services, persistence, one-packet UDP and a fwmark rule.
//!
//! `cargo test --release -p rvs-core --test fuzz` runs `RVS_FUZZ_ITERS`
//! frames (default 300 000; the README gives the figures of a 10^8 run).

// A harness, not the engine: it reads its settings, measures and reports
// (crates/rvs-core/clippy.toml keeps those out of the engine).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_macros,
    clippy::disallowed_types
)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::fwmark::FwmarkRule;
use rvs_core::service::{SVC_F_ONEPACKET, SVC_F_PERSISTENT, ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

const HEADROOM: usize = 128;
const C: PortId = PortId(0);
const S: PortId = PortId(1);
const VIP: [u8; 4] = [10, 0, 0, 100];
const CIP: [u8; 4] = [172, 16, 0, 5];
const RS: [[u8; 4]; 2] = [[192, 168, 1, 11], [192, 168, 1, 12]];
const VIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
const CIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const RS6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];

use rvs_testsupport::FuzzRng as Rng;

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        max_conns: 4096,
        ..EngineConfig::default()
    });
    for (port, mac, v4, v6) in [
        (C, [2, 0, 0, 0, 0, 1], [10, 0, 0, 2], CIP6),
        (S, [2, 0, 0, 0, 1, 1], [192, 168, 1, 1], RS6),
    ] {
        e.set_port(
            port,
            PortConfig {
                mac: EthernetAddress(mac),
                mtu: 1500,
                addr_v4: Some(Ipv4Addr::from(v4)),
                addr_v6: Some(Ipv6Addr::from(v6)),
            },
        );
    }
    let hop = |port, last| Hop {
        port,
        mac: EthernetAddress([2, 0, 0, 0, 9, last]),
    };
    e.set_hop(IpAddr::from(CIP), hop(C, 1));
    e.set_hop(IpAddr::from(CIP6), hop(C, 2));
    e.set_hop(IpAddr::from(RS[0]), hop(S, 3));
    e.set_hop(IpAddr::from(RS[1]), hop(S, 4));
    e.set_hop(IpAddr::from(RS6), hop(S, 5));
    let services: [(Protocol, u16, FwdMethod, u32); 8] = [
        (Protocol::Tcp, 80, FwdMethod::Masq, 0),
        (Protocol::Tcp, 443, FwdMethod::Route, SVC_F_PERSISTENT),
        (Protocol::Tcp, 8080, FwdMethod::Tunnel, 0),
        (Protocol::Udp, 53, FwdMethod::Masq, SVC_F_ONEPACKET),
        (Protocol::Udp, 0, FwdMethod::Route, SVC_F_PERSISTENT),
        (Protocol::Udp, 4789, FwdMethod::Tunnel, 0),
        (Protocol::Sctp, 9, FwdMethod::Masq, 0),
        // SIP, persistent by Call-ID (--pe sip), one datagram at a time.
        (
            Protocol::Udp,
            5060,
            FwdMethod::Route,
            SVC_F_PERSISTENT | SVC_F_ONEPACKET,
        ),
    ];
    for (proto, port, fwd, flags) in services {
        let key = ServiceKey::Addr {
            proto,
            addr: IpAddr::from(VIP),
            port,
        };
        let mut cfg = ServiceConfig::new(Af::Inet);
        cfg.scheduler = "wlc".into();
        cfg.flags |= flags;
        if flags & SVC_F_PERSISTENT != 0 {
            cfg.timeout = 30;
        }
        if port == 5060 {
            cfg.pe = Some("sip".into());
        }
        e.add_service(key, cfg).unwrap();
        for rs in RS {
            let mut d = DestConfig::new(IpAddr::from(rs), port);
            d.fwd = fwd;
            e.add_dest(&key, &d, Instant::ZERO).unwrap();
        }
    }
    // A service without real servers: the engine answers ICMP port
    // unreachable (ip_vs_leave).
    let empty = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: IpAddr::from(VIP),
        port: 5353,
    };
    e.add_service(empty, ServiceConfig::new(Af::Inet)).unwrap();
    let key6 = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::from(VIP6),
        port: 80,
    };
    let mut cfg = ServiceConfig::new(Af::Inet6);
    cfg.scheduler = "rr".into();
    e.add_service(key6, cfg).unwrap();
    let mut d = DestConfig::new(IpAddr::from(RS6), 80);
    d.fwd = FwdMethod::Masq;
    e.add_dest(&key6, &d, Instant::ZERO).unwrap();
    let fw = ServiceKey::Fwmark {
        af: Af::Inet,
        mark: 7,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "sh".into();
    e.add_service(fw, cfg).unwrap();
    let mut d = DestConfig::new(IpAddr::from(RS[0]), 0);
    d.fwd = FwdMethod::Route;
    e.add_dest(&fw, &d, Instant::ZERO).unwrap();
    let rule = FwmarkRule {
        addr: IpAddr::from(VIP),
        prefix_len: 32,
        proto: Some(Protocol::Tcp),
        dports: vec![8443],
        iif: None,
        mark: 7,
    };
    e.add_fwmark_rule(&rule).unwrap();
    e
}

/// The IPv4 packet of Ethernet frame `v` (no VLAN tag, no options) cut
/// into fragments of at most 1500 bytes, with identification `ident`.
fn fragments(v: &[u8], ident: u16) -> Vec<Vec<u8>> {
    let l4 = &v[34..];
    let chunk = 1480;
    let mut out = Vec::new();
    for (i, part) in l4.chunks(chunk).enumerate() {
        let mut f = v[..34].to_vec();
        f.extend_from_slice(part);
        let h = &mut f[14..34];
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        let more = (i + 1) * chunk < l4.len();
        let fo = ((i * chunk / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let mut sum: u32 = h
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        out.push(f);
    }
    out
}

/// Valid frames of every kind the engine handles.
fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mac = ([2, 0, 0, 0, 0, 0xc], [2, 0, 0, 0, 0, 1]);
    for (sport, dport) in [
        (40000u16, 80u16),
        (40001, 443),
        (40002, 8080),
        (40003, 8443),
    ] {
        for flags in 0..6 {
            let b = PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv4(CIP, VIP, 64)
                .tcp(sport, dport, 1000, 65535);
            let b = match flags {
                0 => b.syn(),
                1 => b.ack(1),
                2 => b.fin().ack(1),
                3 => b.rst(),
                4 => b.psh().ack(1),
                _ => b.syn().ack(1),
            };
            let mut v = Vec::new();
            b.write(&mut v, b"payload").unwrap();
            out.push(v);
        }
        // The reply direction, from each real server.
        for rs in RS {
            let mut v = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 0x11], [2, 0, 0, 0, 1, 1])
                .ipv4(rs, CIP, 64)
                .tcp(dport, sport, 5000, 65535)
                .syn()
                .ack(1001)
                .write(&mut v, b"")
                .unwrap();
            out.push(v);
        }
    }
    for dport in [53u16, 5353, 4789] {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac.0, mac.1)
            .ipv4(CIP, VIP, 64)
            .udp(33000, dport)
            .write(&mut v, b"query")
            .unwrap();
        out.push(v);
    }
    // SIP messages of a few calls, for the Call-ID search to chew on.
    for call in ["a84b4c76e66710@pc33.example.com", "x", "7@"] {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac.0, mac.1)
            .ipv4(CIP, VIP, 64)
            .udp(5060, 5060)
            .write(
                &mut v,
                format!(
                    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP \
                     pc33.example.com\r\nCall-ID: {call}\r\ni: {call}\r\n \
                     continued\r\nCSeq: 1 INVITE\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        out.push(v);
    }
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv4(CIP, VIP, 64)
        .udp(33002, 4789)
        .write(&mut v, &[0x42; 1472])
        .unwrap();
    out.push(v);
    // Fragments of 3000-byte UDP datagrams (DF clear): to the TUN, NAT
    // and DR services, and a NAT reply; in any order the mutator picks.
    let rs_mac = ([2, 0, 0, 0, 1, 0x11], [2, 0, 0, 0, 1, 1]);
    for (i, (m, src, dst, sport, dport)) in [
        (mac, CIP, VIP, 33010u16, 4789u16),
        (mac, CIP, VIP, 33011, 53),
        (mac, CIP, VIP, 33012, 1234),
        (rs_mac, RS[0], CIP, 53, 33011),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(m.0, m.1)
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut v, &[0x5a; 3000])
            .unwrap();
        out.extend(fragments(&v, 0x700 + i as u16));
    }
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac.0, mac.1)
        .single_vlan(5.try_into().unwrap())
        .ipv4(CIP, VIP, 64)
        .udp(33001, 53)
        .write(&mut v, b"tagged")
        .unwrap();
    out.push(v);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv6(CIP6, VIP6, 64)
        .tcp(40010, 80, 1, 100)
        .syn()
        .write(&mut v, b"")
        .unwrap();
    out.push(v);
    // SCTP: common header and an INIT, then a DATA chunk (raw bytes).
    for chunk in [1u8, 0] {
        let mut sctp = vec![0x9c, 0x41, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, chunk, 0, 0, 20];
        sctp.extend_from_slice(&[0; 16]);
        let crc = rvs_wire::checksum::crc32c(&sctp);
        sctp[8..12].copy_from_slice(&crc.to_le_bytes());
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac.0, mac.1)
            .ipv4(CIP, VIP, 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp)
            .unwrap();
        out.push(v);
    }
    // ICMP errors quoting a client -> VIP packet and a reply.
    for (src, quoted) in [(RS[0], out[0].clone()), (CIP, out[6].clone())] {
        let inner = quoted[14..quoted.len().min(14 + 28)].to_vec();
        let mut v = Vec::new();
        PacketBuilder::ethernet2(mac.0, mac.1)
            .ipv4(src, VIP, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                },
            ))
            .write(&mut v, &inner)
            .unwrap();
        out.push(v);
    }
    // IPv4 with options and a first fragment.
    let mut v = out[0].clone();
    v[14] = 0x46;
    v.splice(34..34, [1, 1, 1, 0]);
    out.push(v);
    let mut v = out[1].clone();
    v[14 + 6] |= 0x20;
    out.push(v);
    out
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut f = corpus[rng.below(corpus.len())].clone();
    match rng.below(8) {
        0 => {
            // Wholly random bytes.
            let n = rng.below(200);
            f = (0..n).map(|_| rng.next() as u8).collect();
        }
        1 => {
            let n = rng.below(f.len() + 1);
            f.truncate(n);
        }
        2 => {
            let n = rng.below(64);
            f.extend((0..n).map(|_| rng.next() as u8));
        }
        3 => {
            // Splice another frame's tail in.
            let g = &corpus[rng.below(corpus.len())];
            let at = rng.below(f.len().min(g.len()) + 1);
            f.truncate(at);
            f.extend_from_slice(&g[at.min(g.len())..]);
        }
        4 => {
            // A header field set to an edge value.
            if !f.is_empty() {
                let i = rng.below(f.len().min(80));
                f[i] = [0, 0xff, 0x80, 0x7f, 1][rng.below(5)];
            }
        }
        _ => {
            for _ in 0..1 + rng.below(4) {
                if !f.is_empty() {
                    let i = rng.below(f.len());
                    f[i] ^= 1 << rng.below(8);
                }
            }
        }
    }
    f
}

#[test]
fn engine_never_panics_on_mutated_frames() {
    let (iters, seed) = rvs_testsupport::fuzz_env(300_000, 0x5eed_1234_abcd_0001);
    let corpus = corpus();
    let mut rng = Rng(seed);
    let mut e = engine();
    let mut now = Instant::ZERO;
    let mut buf = vec![0u8; HEADROOM + 2048];
    let (mut forwarded, mut replies, mut pieces, mut released) = (0u64, 0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for i in 0..iters {
        let frame = mutate(&mut rng, &corpus);
        let len = frame.len().min(2048);
        buf[HEADROOM..HEADROOM + len].copy_from_slice(&frame[..len]);
        let ingress = if rng.below(4) == 0 { S } else { C };
        let a = e.process(
            Frame {
                buf: &mut buf,
                start: HEADROOM,
                len,
                ingress,
                fwmark: 0,
            },
            now,
        );
        match a {
            Action::Forward { start, len, .. } => {
                assert!(start + len <= buf.len(), "seed {seed} iteration {i}");
                forwarded += 1;
            }
            Action::Reply { len, .. } => {
                assert!(!e.reply_frame(len).is_empty(), "seed {seed} iteration {i}");
                replies += 1;
            }
            Action::Frames { count, .. } => {
                for k in 0..count {
                    let f = e.frame_at(k);
                    assert!(
                        !f.is_empty() && f.len() <= 1518,
                        "seed {seed} iteration {i}"
                    );
                }
                pieces += 1;
            }
            _ => {}
        }
        // Fragments released by a first fragment, processed after it.
        while let Some(mut h) = e.pop_released_fragment() {
            let len = h.len();
            let a = e.process(
                Frame {
                    buf: &mut h.buf,
                    start: rvs_core::frag::HELD_HEADROOM,
                    len,
                    ingress,
                    fwmark: 0,
                },
                now,
            );
            if let Action::Forward { start, len, .. } = a {
                assert!(start + len <= h.buf.len(), "seed {seed} iteration {i}");
            }
            released += 1;
            e.recycle_fragment(h.buf);
        }
        if i % 1024 == 0 {
            now = now + core::time::Duration::from_millis(rng.below(5000) as u64);
            e.poll(now);
        }
        if i % 100_000 == 99_999 {
            // Control changes while traffic flows.
            let key = ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: IpAddr::from(VIP),
                port: 80,
            };
            let d = DestConfig::new(IpAddr::from(RS[1]), 80);
            let _ = e.delete_dest(&key, d.addr, d.port, now);
            let mut d = d;
            d.fwd = FwdMethod::Masq;
            let _ = e.add_dest(&key, &d, now);
        }
    }
    eprintln!(
        "{iters} frames (seed {seed:#x}) in {:?}: {forwarded} forwarded, {replies} replies, \
         {} connections, {pieces} packets cut for a tunnel, {released} fragments released; {:?}",
        started.elapsed(),
        e.conns().len(),
        e.counters().frag
    );
    assert!(forwarded > 0 && replies > 0);
}
