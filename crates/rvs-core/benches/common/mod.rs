//! What the engine benches share: a director with one service of 10 real
//! servers, TCP/IPv4 frames, and filling the table.

// Not every bench uses every item.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_macros)]

use core::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

pub const HEADROOM: usize = 128;
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

pub fn client(i: u32) -> (Ipv4Addr, u16) {
    // Spread flows over many client addresses and ports.
    let addr = Ipv4Addr::from(0x6400_0000u32 + (i >> 6));
    (addr, 1024 + (i & 63) as u16 * 613 % 60000)
}

pub fn frame(c: (Ipv4Addr, u16), syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc], [2, 0, 0, 0, 0, 1])
        .ipv4(c.0.octets(), VIP.octets(), 64)
        .tcp(c.1, 80, 1, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = vec![0u8; HEADROOM];
    b.write(&mut v, &[0u8; 6]).unwrap();
    v
}

pub fn run(e: &mut Engine, f: &mut [u8], now: Instant) -> Action {
    let len = f.len() - HEADROOM;
    e.process(
        Frame {
            buf: f,
            start: HEADROOM,
            len,
            ingress: PortId(0),
            fwmark: 0,
        },
        now,
    )
}

pub fn setup(fwd: FwdMethod) -> Engine {
    let mut e = Engine::new(EngineConfig {
        max_conns: 4 << 20,
        ..EngineConfig::default()
    });
    for p in 0..2 {
        e.set_port(
            PortId(p),
            PortConfig {
                mac: EthernetAddress([2, 0, 0, 0, p as u8, 1]),
                mtu: 1500,
                addr_v4: Some(Ipv4Addr::new(192, 168, p as u8, 1)),
                addr_v6: None,
            },
        );
    }
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "wlc".into();
    e.add_service(key, cfg).unwrap();
    for i in 0..10u8 {
        let rs = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10 + i));
        let mut d = DestConfig::new(rs, 80);
        d.fwd = fwd;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
        e.set_hop(
            rs,
            Hop {
                port: PortId(1),
                mac: EthernetAddress([2, 0, 0, 0, 1, 10 + i]),
            },
        );
    }
    // Established connections stay for the whole bench.
    e.set_timeouts(2_000_000, 0, 0).unwrap();
    e
}

pub fn fill(e: &mut Engine, n: u32) {
    for i in 0..n {
        let c = client(i);
        let mut f = frame(c, true);
        assert!(matches!(
            run(e, &mut f, Instant::ZERO),
            Action::Forward { .. }
        ));
        let mut f = frame(c, false);
        assert!(matches!(
            run(e, &mut f, Instant::ZERO),
            Action::Forward { .. }
        ));
    }
}
