//! Firewall-mark rules through `Engine::process`: the engine marks packets
//! that arrive without a mark, and the service lookup follows the kernel's
//! order (fwmark service, then address service, then port-0 service).

use core::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;
use rvs_core::conn;
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::fwmark::FwmarkRule;
use rvs_core::service::{SVC_F_PERSISTENT, ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

const HEADROOM: usize = 64;
const CLIENT_PORT: PortId = PortId(2);
const SERVER_PORT: PortId = PortId(3);
const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x12];

const VIP: [u8; 4] = [122, 161, 1, 100];
const CIP: [u8; 4] = [172, 16, 0, 5];
const RS1: [u8; 4] = [192, 168, 1, 11];
const RS2: [u8; 4] = [192, 168, 1, 12];

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    for port in [CLIENT_PORT, SERVER_PORT] {
        e.set_port(
            port,
            PortConfig {
                mac: EthernetAddress(DIRECTOR_MAC),
                mtu: 1500,
                addr_v4: Some(Ipv4Addr::new(192, 168, 1, 1)),
                addr_v6: None,
            },
        );
    }
    for (addr, mac, port) in [
        (CIP, CLIENT_MAC, CLIENT_PORT),
        (RS1, RS1_MAC, SERVER_PORT),
        (RS2, RS2_MAC, SERVER_PORT),
    ] {
        e.set_hop(
            v4(addr),
            Hop {
                port,
                mac: EthernetAddress(mac),
            },
        );
    }
    e
}

/// `-A -f MARK -s rr [-p 3600]` with DR real servers `-a -f MARK -r RS -g -w 1`.
fn add_fwmark_service(e: &mut Engine, mark: u32, persistent: bool, servers: &[[u8; 4]]) {
    let key = ServiceKey::Fwmark { af: Af::Inet, mark };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    if persistent {
        cfg.flags = SVC_F_PERSISTENT;
        cfg.timeout = 3600;
    }
    e.add_service(key, cfg).unwrap();
    for rs in servers {
        let mut d = DestConfig::new(v4(*rs), 0);
        d.fwd = FwdMethod::Route;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
}

/// `-A -t VIP:PORT -s rr` with one DR real server.
fn add_addr_service(e: &mut Engine, port: u16, rs: [u8; 4]) {
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: v4(VIP),
        port,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    e.add_service(key, cfg).unwrap();
    let mut d = DestConfig::new(v4(rs), port);
    d.fwd = FwdMethod::Route;
    e.add_dest(&key, &d, Instant::ZERO).unwrap();
}

/// `-d VIP/32 -p tcp --dport PORTS --set-mark MARK`.
fn rule(dports: &[u16], mark: u32) -> FwmarkRule {
    FwmarkRule {
        addr: v4(VIP),
        prefix_len: 32,
        proto: Some(Protocol::Tcp),
        dports: dports.to_vec(),
        iif: None,
        mark,
    }
}

/// A client SYN to VIP:`vport` with `mark` set on the frame; the action and
/// the destination MAC of the frame after processing.
fn syn(e: &mut Engine, cport: u16, vport: u16, mark: u32) -> (Action, [u8; 6]) {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CIP, VIP, 64)
        .tcp(cport, vport, 1000, 65535)
        .syn();
    let mut buf = vec![0u8; HEADROOM];
    b.write(&mut buf, b"").unwrap();
    let len = buf.len() - HEADROOM;
    let a = e.process(
        Frame {
            buf: &mut buf,
            start: HEADROOM,
            len,
            ingress: CLIENT_PORT,
            fwmark: mark,
        },
        Instant::ZERO,
    );
    let mut mac = [0u8; 6];
    if let Action::Forward { start, .. } = a {
        mac.copy_from_slice(&buf[start..start + 6]);
    }
    (a, mac)
}

fn is_forward(a: &Action) -> bool {
    matches!(a, Action::Forward { .. })
}

#[test]
fn a_rule_leads_to_the_fwmark_service() {
    let mut e = engine();
    add_fwmark_service(&mut e, 10, false, &[RS1]);
    assert_eq!(syn(&mut e, 40000, 443, 0).0, Action::Pass, "no rule yet");
    e.add_fwmark_rule(&rule(&[443], 10)).unwrap();
    let (a, mac) = syn(&mut e, 40001, 443, 0);
    assert!(is_forward(&a), "{a:?}");
    assert_eq!(mac, RS1_MAC);
    let c = e
        .conns()
        .iter()
        .map(|(_, c)| c.clone())
        .find(|c| c.cport == 40001)
        .unwrap();
    assert_eq!(c.fwmark, 10, "the connection records the mark");
    // Another port of the VIP is not marked.
    assert_eq!(syn(&mut e, 40002, 8443, 0).0, Action::Pass);
    // An ingress-interface rule for another interface does not match.
    e.flush_fwmark_rules();
    let mut other_if = rule(&[443], 10);
    other_if.iif = Some(SERVER_PORT.0);
    e.add_fwmark_rule(&other_if).unwrap();
    assert_eq!(syn(&mut e, 40003, 443, 0).0, Action::Pass);
    let mut this_if = rule(&[443], 10);
    this_if.iif = Some(CLIENT_PORT.0);
    e.add_fwmark_rule(&this_if).unwrap();
    assert!(is_forward(&syn(&mut e, 40004, 443, 0).0));
}

/// The tutorial's PFWMC: ports 80 and 443 of one VIP under one persistent
/// fwmark service share one template, so a client sticks to one server.
#[test]
fn pfwmc_two_ports_one_persistent_template() {
    let mut e = engine();
    e.add_fwmark_rule(&rule(&[80], 10)).unwrap();
    e.add_fwmark_rule(&rule(&[443], 10)).unwrap();
    add_fwmark_service(&mut e, 10, true, &[RS1, RS2]);
    let mut macs = Vec::new();
    for (i, vport) in [80u16, 443, 80, 443, 443].into_iter().enumerate() {
        let (a, mac) = syn(&mut e, 50000 + i as u16, vport, 0);
        assert!(is_forward(&a), "{vport}: {a:?}");
        macs.push(mac);
    }
    assert!(macs.iter().all(|m| *m == macs[0]), "{macs:?}");
    let templates: Vec<_> = e
        .conns()
        .iter()
        .filter(|(_, c)| c.flags & conn::flags::TEMPLATE != 0)
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].vaddr, v4([0, 0, 0, 10]));
    assert_eq!(templates[0].fwmark, 10);
    assert_eq!(syn(&mut e, 50100, 8080, 0).0, Action::Pass);
}

#[test]
fn without_a_matching_rule_the_address_service_serves() {
    let mut e = engine();
    add_fwmark_service(&mut e, 10, false, &[RS1]);
    add_addr_service(&mut e, 80, RS2);
    // No rule at all.
    assert_eq!(syn(&mut e, 41000, 80, 0).1, RS2_MAC);
    // A rule for another port.
    e.add_fwmark_rule(&rule(&[443], 10)).unwrap();
    assert_eq!(syn(&mut e, 41001, 80, 0).1, RS2_MAC);
    // A rule for this port: the fwmark service comes first, as in the kernel.
    e.add_fwmark_rule(&rule(&[80], 10)).unwrap();
    assert_eq!(syn(&mut e, 41002, 80, 0).1, RS1_MAC);
}

#[test]
fn a_mark_without_a_service_falls_through_to_the_address_service() {
    let mut e = engine();
    add_addr_service(&mut e, 80, RS2);
    e.add_fwmark_rule(&rule(&[80], 77)).unwrap();
    assert_eq!(syn(&mut e, 42000, 80, 0).1, RS2_MAC);
    // Last rule wins: a later rule with a mark that has no service hides
    // an earlier one whose mark has one.
    add_fwmark_service(&mut e, 10, false, &[RS1]);
    e.flush_fwmark_rules();
    e.add_fwmark_rule(&rule(&[80], 10)).unwrap();
    assert_eq!(syn(&mut e, 42001, 80, 0).1, RS1_MAC);
    e.add_fwmark_rule(&rule(&[80], 77)).unwrap();
    assert_eq!(syn(&mut e, 42002, 80, 0).1, RS2_MAC);
}

#[test]
fn a_mark_on_the_frame_wins_over_the_rules() {
    let mut e = engine();
    add_fwmark_service(&mut e, 10, false, &[RS1]);
    add_fwmark_service(&mut e, 20, false, &[RS2]);
    e.add_fwmark_rule(&rule(&[80], 10)).unwrap();
    assert_eq!(syn(&mut e, 43000, 80, 0).1, RS1_MAC);
    assert_eq!(syn(&mut e, 43001, 80, 20).1, RS2_MAC);
}
