//! Engine setup and frame builders shared by the engine's integration tests
//! (tests/engine.rs, tests/fastpath.rs): a director with a client port and a
//! server port, TCP/UDP IPv4 frames built with etherparse, independently of
//! rvs-wire.

// Not every test file uses every item.
#![allow(dead_code)]

use core::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;
use rvs_core::conn;
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

pub const HEADROOM: usize = 128;
pub const CLIENT_PORT: PortId = PortId(0);
pub const SERVER_PORT: PortId = PortId(1);
pub const DIRECTOR_MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const DIRECTOR_MAC_S: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
pub const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
pub const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x12];

pub fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub const VIP: [u8; 4] = [10, 0, 0, 100];
pub const CIP: [u8; 4] = [172, 16, 0, 5];
pub const RS1: [u8; 4] = [192, 168, 1, 11];
pub const RS2: [u8; 4] = [192, 168, 1, 12];

pub fn engine() -> Engine {
    engine_with(EngineConfig::default())
}

pub fn engine_with(cfg: EngineConfig) -> Engine {
    let mut e = Engine::new(cfg);
    e.set_port(
        CLIENT_PORT,
        PortConfig {
            mac: EthernetAddress(DIRECTOR_MAC_C),
            mtu: 1500,
            addr_v4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            addr_v6: None,
        },
    );
    e.set_port(
        SERVER_PORT,
        PortConfig {
            mac: EthernetAddress(DIRECTOR_MAC_S),
            mtu: 1500,
            addr_v4: Some(Ipv4Addr::new(192, 168, 1, 1)),
            addr_v6: None,
        },
    );
    e.set_hop(
        v4(CIP),
        Hop {
            port: CLIENT_PORT,
            mac: EthernetAddress(CLIENT_MAC),
        },
    );
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS1_MAC),
        },
    );
    e.set_hop(
        v4(RS2),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS2_MAC),
        },
    );
    e
}

pub fn svc_key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: v4(VIP),
        port,
    }
}

pub fn add_service(e: &mut Engine, key: ServiceKey, sched: &str, fwd: FwdMethod, dports: &[u16]) {
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = sched.into();
    e.add_service(key, cfg).unwrap();
    for (i, rs) in [RS1, RS2].iter().enumerate().take(dports.len()) {
        let mut d = DestConfig::new(v4(*rs), dports[i]);
        d.fwd = fwd;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
}

#[derive(Clone, Copy)]
pub enum Flags {
    Syn,
    SynAck,
    Ack,
    FinAck,
    Rst,
}

/// A TCP/IPv4 frame with `HEADROOM` bytes of headroom.
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 65535);
    let b = match flags {
        Flags::Syn => b.syn(),
        Flags::SynAck => b.syn().ack(1),
        Flags::Ack => b.ack(1),
        Flags::FinAck => b.fin().ack(1),
        Flags::Rst => b.rst(),
    };
    let mut v = vec![0u8; HEADROOM];
    b.write(&mut v, payload).unwrap();
    v
}

pub fn udp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC_C)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut v = vec![0u8; HEADROOM];
    b.write(&mut v, payload).unwrap();
    v
}

pub fn run(e: &mut Engine, buf: &mut Vec<u8>, ingress: PortId, now: Instant) -> Action {
    let len = buf.len() - HEADROOM;
    e.process(
        Frame {
            buf,
            start: HEADROOM,
            len,
            ingress,
            fwmark: 0,
        },
        now,
    )
}

pub fn client_pkt(
    e: &mut Engine,
    cport: u16,
    vport: u16,
    flags: Flags,
    now: Instant,
) -> (Action, Vec<u8>) {
    let mut f = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, cport),
        (VIP, vport),
        flags,
        b"hello",
    );
    let a = run(e, &mut f, CLIENT_PORT, now);
    (a, f)
}

pub fn the_conn(e: &Engine) -> conn::Conn {
    let v: Vec<_> = e
        .conns()
        .iter()
        .filter(|(_, c)| c.flags & conn::flags::TEMPLATE == 0)
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(v.len(), 1, "exactly one connection");
    v[0].clone()
}
