//! Unit tests of the service table.

use super::*;
use core::net::Ipv4Addr;

fn tcp(a: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn rs(a: [u8; 4], port: u16) -> DestConfig {
    DestConfig::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

#[test]
fn add_edit_delete_service_errors() {
    let mut t = Services::new();
    let k = tcp([10, 0, 0, 1], 80);
    t.add(k, ServiceConfig::new(Af::Inet)).unwrap();
    assert_eq!(
        t.add(k, ServiceConfig::new(Af::Inet)).unwrap_err(),
        CtlError::Exists
    );
    let mut bad = ServiceConfig::new(Af::Inet);
    bad.scheduler = "nope".into();
    assert_eq!(
        t.add(tcp([10, 0, 0, 2], 80), bad.clone())
            .unwrap_err()
            .errno(),
        2
    );
    assert_eq!(t.edit(&k, bad).unwrap_err().errno(), 2);
    assert_eq!(
        t.edit(&tcp([10, 0, 0, 9], 80), ServiceConfig::new(Af::Inet))
            .unwrap_err(),
        CtlError::NoSuchService
    );
    assert_eq!(t.len(), 1);
    t.delete(&k).unwrap();
    assert_eq!(t.delete(&k).unwrap_err(), CtlError::NoSuchService);
    assert!(t.is_empty());
}

#[test]
fn edit_replaces_everything() {
    let mut t = Services::new();
    let k = tcp([10, 0, 0, 1], 80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    cfg.flags = SVC_F_PERSISTENT;
    cfg.timeout = 600;
    t.add(k, cfg).unwrap();
    t.edit(&k, ServiceConfig::new(Af::Inet)).unwrap();
    let svc = t.get(t.find(&k).unwrap()).unwrap();
    assert_eq!(svc.scheduler.name(), "wlc");
    assert!(!svc.persistent());
}

#[test]
fn dests_newest_first_and_errors() {
    let mut t = Services::new();
    let k = tcp([10, 0, 0, 1], 80);
    let now = Instant::ZERO;
    assert_eq!(
        t.add_dest(&k, &rs([1, 1, 1, 1], 80), now).unwrap_err(),
        CtlError::NoSuchService
    );
    t.add(k, ServiceConfig::new(Af::Inet)).unwrap();
    t.add_dest(&k, &rs([1, 1, 1, 1], 80), now).unwrap();
    t.add_dest(&k, &rs([1, 1, 1, 2], 80), now).unwrap();
    assert_eq!(
        t.add_dest(&k, &rs([1, 1, 1, 2], 80), now).unwrap_err(),
        CtlError::Exists
    );
    let svc = t.get(t.find(&k).unwrap()).unwrap();
    assert_eq!(svc.dests[0].addr, IpAddr::V4(Ipv4Addr::new(1, 1, 1, 2)));
    let mut e = rs([1, 1, 1, 3], 80);
    assert_eq!(
        t.edit_dest(&k, &e).unwrap_err(),
        CtlError::NotFound("destination")
    );
    e.addr = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));
    e.l_threshold = 5;
    assert_eq!(t.edit_dest(&k, &e).unwrap_err(), CtlError::Range);
    let v6 = DestConfig::new("2001:db8::1".parse().unwrap(), 80);
    assert_eq!(t.add_dest(&k, &v6, now).unwrap_err().errno(), 22);
    let mut v6t = v6;
    v6t.fwd = FwdMethod::Tunnel;
    t.add_dest(&k, &v6t, now).unwrap();
}

#[test]
fn deleted_dest_goes_to_trash_and_revives() {
    let mut t = Services::new();
    let k = tcp([10, 0, 0, 1], 80);
    t.add(k, ServiceConfig::new(Af::Inet)).unwrap();
    let id = t
        .add_dest(&k, &rs([1, 1, 1, 1], 80), Instant::ZERO)
        .unwrap();
    let r = t.find(&k).unwrap();
    t.get_mut(r).unwrap().dests[0]
        .stats
        .add(&crate::stats::Counters {
            conns: 5,
            ..Default::default()
        });
    t.delete_dest(&k, "1.1.1.1".parse().unwrap(), 80, Instant::ZERO)
        .unwrap();
    assert!(t.get(r).unwrap().dests.is_empty());
    let id2 = t
        .add_dest(&k, &rs([1, 1, 1, 1], 80), Instant::from_secs(10))
        .unwrap();
    assert_eq!(id, id2);
    assert_eq!(t.get(r).unwrap().dests[0].stats.counters().conns, 5);
    t.delete_dest(&k, "1.1.1.1".parse().unwrap(), 80, Instant::ZERO)
        .unwrap();
    t.purge_trash(Instant::from_secs(121), |_| false);
    assert!(t.get(r).unwrap().trash.is_empty());
}

#[test]
fn nat_sources_follow_masq_dests() {
    let mut t = Services::new();
    let k = tcp([10, 0, 0, 1], 80);
    let k2 = tcp([10, 0, 0, 2], 80);
    t.add(k, ServiceConfig::new(Af::Inet)).unwrap();
    t.add(k2, ServiceConfig::new(Af::Inet)).unwrap();
    let a: IpAddr = "1.1.1.1".parse().unwrap();
    let mut m = rs([1, 1, 1, 1], 80);
    m.fwd = FwdMethod::Masq;
    t.add_dest(&k, &m, Instant::ZERO).unwrap();
    t.add_dest(&k2, &m, Instant::ZERO).unwrap();
    assert!(t.is_nat_source(&a));
    t.delete(&k2).unwrap();
    assert!(t.is_nat_source(&a));
    let dr = rs([1, 1, 1, 1], 80);
    t.edit_dest(&k, &dr).unwrap();
    assert!(!t.is_nat_source(&a));
    t.edit_dest(&k, &m).unwrap();
    // Deleted: still a source while in the trash (its conns may reply).
    t.delete_dest(&k, a, 80, Instant::ZERO).unwrap();
    assert!(t.is_nat_source(&a));
    t.purge_trash(Instant::from_secs(200), |_| false);
    assert!(!t.is_nat_source(&a));
    t.add_dest(&k, &m, Instant::ZERO).unwrap();
    t.clear();
    assert!(!t.is_nat_source(&a));
}

#[test]
fn virtual_addrs_follow_services() {
    let mut t = Services::new();
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    assert!(!t.is_virtual_addr(a));
    t.add(tcp([10, 0, 0, 1], 80), ServiceConfig::new(Af::Inet))
        .unwrap();
    t.add(tcp([10, 0, 0, 1], 443), ServiceConfig::new(Af::Inet))
        .unwrap();
    assert!(t.is_virtual_addr(a));
    assert!(!t.is_virtual_addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
    t.delete(&tcp([10, 0, 0, 1], 80)).unwrap();
    assert!(t.is_virtual_addr(a));
    t.clear();
    assert!(!t.is_virtual_addr(a));
}

#[test]
fn lookup_order() {
    let mut t = Services::new();
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut p = ServiceConfig::new(Af::Inet);
    p.flags = SVC_F_PERSISTENT;
    p.timeout = 360;
    let any = t.add(tcp([10, 0, 0, 1], 0), p).unwrap();
    let web = t
        .add(tcp([10, 0, 0, 1], 80), ServiceConfig::new(Af::Inet))
        .unwrap();
    let fw = t
        .add(
            ServiceKey::Fwmark {
                af: Af::Inet,
                mark: 7,
            },
            ServiceConfig::new(Af::Inet),
        )
        .unwrap();
    assert_eq!(t.lookup(0, Af::Inet, Protocol::Tcp, a, 80), Some(web));
    assert_eq!(t.lookup(0, Af::Inet, Protocol::Tcp, a, 443), Some(any));
    assert_eq!(t.lookup(7, Af::Inet, Protocol::Tcp, a, 80), Some(fw));
    assert_eq!(t.lookup(0, Af::Inet, Protocol::Udp, a, 80), None);
    t.delete(&tcp([10, 0, 0, 1], 80)).unwrap();
    assert_eq!(t.get(web).map(|_| ()), None, "stale ref is detected");
}
