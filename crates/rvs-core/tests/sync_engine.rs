//! Connection sync through the engine: what a master queues and when
//! (`ip_vs_sync_conn_needed`), the entries going through the real message
//! encoder and decoder, and how a backup applies them (`ip_vs_proc_conn`):
//! the synced connection forwards to the same real server after takeover.

mod common;

use core::time::Duration;

use common::*;
use rvs_core::conn::{self, flags};
use rvs_core::engine::{Action, Engine, SyncApplied, UNBOUND_OWNER};
use rvs_core::service::ServiceKey;
use rvs_core::{FwdMethod, Instant};
use rvs_wire::ipvs_sync::{Message, SyncBuffer, SyncConn, Version};

/// Encode `entries` into messages as a master daemon would (version `v`,
/// syncid 7), decode them and apply every entry to `backup`.
fn ship(
    entries: &[SyncConn<'static>],
    v: Version,
    backup: &mut Engine,
    now: Instant,
) -> Vec<SyncApplied> {
    let mut out = Vec::new();
    let mut sb = SyncBuffer::new(vec![0u8; 1500], v, 7, 1472).unwrap();
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    for e in entries {
        if !sb.try_push(e).unwrap() {
            msgs.push(sb.as_bytes().to_vec());
            sb.reset();
            assert!(sb.try_push(e).unwrap());
        }
    }
    if !sb.is_empty() {
        msgs.push(sb.as_bytes().to_vec());
    }
    for m in &msgs {
        let msg = Message::parse(m).unwrap();
        assert!(msg.accepted_by(0) && msg.accepted_by(7) && !msg.accepted_by(8));
        for c in msg.conns() {
            out.push(backup.apply_sync(&c.unwrap(), msg.version(), now));
        }
    }
    out
}

/// SYN, ACK, ACK of client port `cport`: established, and at the third
/// packet (a master sends it then).
fn three_packets(e: &mut Engine, cport: u16, t: Instant) {
    client_pkt(e, cport, 80, Flags::Syn, t);
    client_pkt(e, cport, 80, Flags::Ack, t);
    client_pkt(e, cport, 80, Flags::Ack, t);
}

/// The queued entries (none of these tests' templates has PE data but
/// the SIP test's, which takes them itself).
fn take(e: &mut Engine) -> Vec<SyncConn<'static>> {
    let mut v = Vec::new();
    e.take_sync(&mut v, usize::MAX);
    v.into_iter().map(|e| e.conn).collect()
}

fn pair(fwd: FwdMethod) -> (Engine, Engine, ServiceKey) {
    let key = svc_key(80);
    let mut m = engine();
    add_service(&mut m, key, "rr", fwd, &[80, 80]);
    let mut b = engine();
    add_service(&mut b, key, "rr", fwd, &[80, 80]);
    m.set_sync_master(true);
    b.set_sync_backup(true);
    (m, b, key)
}

#[test]
fn master_sends_on_the_kernels_packet_counts_and_state_changes() {
    let (mut m, _, _) = pair(FwdMethod::Route);
    let t = Instant::from_secs(10);
    // SYN (SYN_RECV, not sent), ACK (ESTABLISHED at packet 2: waits for 3).
    client_pkt(&mut m, 40000, 80, Flags::Syn, t);
    client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    assert!(take(&mut m).is_empty());
    client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    let sent = take(&mut m);
    assert_eq!(sent.len(), 1, "packet 3");
    assert_eq!(sent[0].state, 1, "ESTABLISHED");
    assert_eq!(
        sent[0].timeout, 900,
        "the state's timeout, not the time left"
    );
    assert_eq!(sent[0].flags & flags::FWD_MASK, flags::DROUTE);
    // Packets 4..52 send nothing; 53 does.
    for _ in 4..53 {
        client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    }
    assert!(take(&mut m).is_empty());
    client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    assert_eq!(take(&mut m).len(), 1, "packet 53");
    // A change into FIN_WAIT is sent at once.
    client_pkt(&mut m, 40000, 80, Flags::FinAck, t);
    let sent = take(&mut m);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, 4, "FIN_WAIT");
    assert_ne!(sent[0].flags & flags::INACTIVE, 0);
    // No master, nothing queued.
    m.set_sync_master(false);
    for _ in 0..60 {
        client_pkt(&mut m, 40001, 80, Flags::Ack, t);
    }
    assert_eq!(m.sync_queued(), 0);
}

#[test]
fn sync_threshold_period_zero_sends_once() {
    let (mut m, _, _) = pair(FwdMethod::Route);
    let mut s = *m.sysctls();
    s.set("sync_threshold", "3 0").unwrap();
    m.set_sysctls(s);
    let t = Instant::from_secs(10);
    client_pkt(&mut m, 40000, 80, Flags::Syn, t);
    for _ in 0..200 {
        client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    }
    assert_eq!(take(&mut m).len(), 1);
}

#[test]
fn backup_takes_over_a_dr_connection_on_the_same_real_server() {
    let (mut m, mut b, key) = pair(FwdMethod::Route);
    let t = Instant::from_secs(10);
    // Two connections: rr gives them RS1 and RS2.
    for cport in [40000, 40001] {
        three_packets(&mut m, cport, t);
    }
    let sent = take(&mut m);
    assert_eq!(sent.len(), 2);
    let applied = ship(&sent, Version::V1, &mut b, t);
    assert_eq!(applied, vec![SyncApplied::Created; 2]);
    assert_eq!(b.conns().len(), 2);
    for (_, c) in b.conns().iter() {
        assert_ne!(c.flags & flags::SYNC, 0, "origin SYNC");
        assert_eq!(conn::state_name(c.proto, c.flags, c.state), "ESTABLISHED");
        assert_eq!(c.expires, t + Duration::from_secs(900));
        assert_eq!(c.in_pkts, 3);
    }
    let svc = b.services().get(b.services().find(&key).unwrap()).unwrap();
    let active: Vec<u32> = svc.dests.iter().map(|d| d.activeconns).collect();
    assert_eq!(active, vec![1, 1]);
    // Takeover: the backup stops being a backup and forwards mid-flow
    // packets to the server the master chose.
    b.set_sync_backup(false);
    let masters: Vec<_> = m.conns().iter().map(|(_, c)| (c.cport, c.daddr)).collect();
    for (cport, daddr) in masters {
        let (a, f) = client_pkt(&mut b, cport, 80, Flags::Ack, t + Duration::from_secs(1));
        let Action::Forward { start, .. } = a else {
            panic!("{a:?}")
        };
        let want = if daddr == v4(RS1) { RS1_MAC } else { RS2_MAC };
        assert_eq!(&f[start..start + 6], &want);
    }
    // No new connection was scheduled: the counts did not move.
    let svc = b.services().get(b.services().find(&key).unwrap()).unwrap();
    assert_eq!(svc.stats.shown().conns, 0);
}

#[test]
fn backup_takes_over_nat_replies_too() {
    let (mut m, mut b, _) = pair(FwdMethod::Masq);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let sent = take(&mut m);
    assert_eq!(
        ship(&sent, Version::V1, &mut b, t),
        vec![SyncApplied::Created]
    );
    b.set_sync_backup(false);
    let c = the_conn(&b);
    assert_eq!(c.flags & flags::FWD_MASK, flags::MASQ);
    // The server's reply is translated back to the VIP.
    let rs = if c.daddr == v4(RS1) { RS1 } else { RS2 };
    let mut reply = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (rs, 80),
        (CIP, 40000),
        Flags::Ack,
        b"data",
    );
    let a = run(&mut b, &mut reply, SERVER_PORT, t);
    let Action::Forward { start, .. } = a else {
        panic!("{a:?}")
    };
    let ip = &reply[start + 14..];
    assert_eq!(&ip[12..16], &VIP, "source rewritten to the VIP");
}

#[test]
fn version_0_messages_apply_with_the_backups_timeouts() {
    let (mut m, mut b, _) = pair(FwdMethod::Route);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let sent = take(&mut m);
    assert_eq!(
        ship(&sent, Version::V0, &mut b, t),
        vec![SyncApplied::Created]
    );
    let c = the_conn(&b);
    assert_eq!(
        c.expires,
        t + Duration::from_secs(900),
        "the backup's ESTABLISHED timeout"
    );
}

#[test]
fn backup_without_the_service_keeps_the_connection_unbound_then_binds_it() {
    let (mut m, _, key) = pair(FwdMethod::Route);
    let mut b = engine();
    b.set_sync_backup(true);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let sent = take(&mut m);
    assert_eq!(
        ship(&sent, Version::V1, &mut b, t),
        vec![SyncApplied::CreatedUnbound]
    );
    assert_eq!(the_conn(&b).owner, UNBOUND_OWNER);
    assert_eq!(b.sync_counters().unbound, 1);
    // The service appears (keepalived configures it); the next entry binds.
    add_service(&mut b, key, "rr", FwdMethod::Route, &[80, 80]);
    for _ in 4..=53 {
        client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    }
    let sent = take(&mut m);
    assert_eq!(
        ship(&sent, Version::V1, &mut b, t),
        vec![SyncApplied::Updated]
    );
    let c = the_conn(&b);
    assert_ne!(c.owner, UNBOUND_OWNER);
    let svc = b.services().get(b.services().find(&key).unwrap()).unwrap();
    let total: u32 = svc.dests.iter().map(|d| d.activeconns).sum();
    assert_eq!(total, 1);
}

#[test]
fn a_moved_connection_is_replaced_and_a_stale_expiry_ignored() {
    let (mut m, mut b, _) = pair(FwdMethod::Route);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let mut sent = take(&mut m);
    ship(&sent, Version::V1, &mut b, t);
    let first = the_conn(&b).daddr;
    let other = if first == v4(RS1) { RS2 } else { RS1 };
    // The same client connection, now on the other server, INACTIVE: stale.
    let rvs_wire::ipvs_sync::SyncAddrs::V4 { caddr, vaddr, .. } = sent[0].addrs else {
        unreachable!()
    };
    sent[0].addrs = rvs_wire::ipvs_sync::SyncAddrs::V4 {
        caddr,
        vaddr,
        daddr: other.into(),
    };
    sent[0].flags |= flags::INACTIVE;
    assert_eq!(
        ship(&sent, Version::V1, &mut b, t),
        vec![SyncApplied::Stale]
    );
    assert_eq!(the_conn(&b).daddr, first);
    // Active on the other server: the old entry goes, the new one stays.
    sent[0].flags &= !flags::INACTIVE;
    assert_eq!(
        ship(&sent, Version::V1, &mut b, t),
        vec![SyncApplied::Created]
    );
    assert_eq!(the_conn(&b).daddr, v4(other));
}

#[test]
fn bad_entries_are_refused_and_counted() {
    let (mut m, mut b, _) = pair(FwdMethod::Route);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let mut sent = take(&mut m);
    sent[0].state = 11; // past TCP's last state
    assert!(matches!(
        ship(&sent, Version::V1, &mut b, t)[0],
        SyncApplied::Refused(_)
    ));
    sent[0].state = 1;
    sent[0].protocol = 47;
    assert!(matches!(
        ship(&sent, Version::V1, &mut b, t)[0],
        SyncApplied::Refused(_)
    ));
    assert_eq!(b.sync_counters().refused, 2);
    assert_eq!(b.conns().len(), 0);
}

#[test]
fn backup_only_stops_forwarding_while_backup() {
    let (_, mut b, _) = pair(FwdMethod::Route);
    let mut s = *b.sysctls();
    s.set("backup_only", "1").unwrap();
    b.set_sysctls(s);
    let t = Instant::from_secs(10);
    let (a, _) = client_pkt(&mut b, 40000, 80, Flags::Syn, t);
    assert_eq!(a, Action::Pass);
    b.set_sync_backup(false);
    let (a, _) = client_pkt(&mut b, 40000, 80, Flags::Syn, t);
    assert!(matches!(a, Action::Forward { .. }));
}

#[test]
fn persistence_templates_are_sent_and_applied() {
    let key = svc_key(80);
    let mk = || {
        let mut e = engine();
        add_service(&mut e, key, "rr", FwdMethod::Route, &[80, 80]);
        let mut cfg = e
            .services()
            .get(e.services().find(&key).unwrap())
            .unwrap()
            .config
            .clone();
        cfg.flags |= rvs_core::service::SVC_F_PERSISTENT;
        cfg.timeout = 360;
        e.edit_service(&key, cfg).unwrap();
        e
    };
    let (mut m, mut b) = (mk(), mk());
    m.set_sync_master(true);
    let t = Instant::from_secs(10);
    three_packets(&mut m, 40000, t);
    let sent = take(&mut m);
    // The template goes with each of the connection's packets (it skips
    // the packet-count test), the connection at packet 3.
    let templates = sent
        .iter()
        .filter(|e| e.flags & flags::TEMPLATE != 0)
        .count();
    assert_eq!(templates, 3);
    assert_eq!(sent.len(), 4);
    ship(&sent, Version::V1, &mut b, t);
    let tpl: Vec<_> = b
        .conns()
        .iter()
        .filter(|(_, c)| c.is_template())
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(tpl.len(), 1);
    assert_eq!(tpl[0].expires, t + Duration::from_secs(360));
    // A new connection from the same client on the backup goes to the
    // template's server.
    b.set_sync_backup(false);
    let (a, f) = client_pkt(&mut b, 40999, 80, Flags::Syn, t);
    let Action::Forward { start, .. } = a else {
        panic!("{a:?}")
    };
    let want = if tpl[0].daddr == v4(RS1) {
        RS1_MAC
    } else {
        RS2_MAC
    };
    assert_eq!(&f[start..start + 6], &want);
}

#[test]
fn the_master_queue_is_bounded() {
    let (mut m, _, _) = pair(FwdMethod::Route);
    let mut s = *m.sysctls();
    s.set("sync_qlen_max", "1").unwrap();
    m.set_sysctls(s);
    let t = Instant::from_secs(10);
    for cport in 0..100u16 {
        client_pkt(&mut m, 20000 + cport, 80, Flags::Syn, t);
        client_pkt(&mut m, 20000 + cport, 80, Flags::Ack, t);
        client_pkt(&mut m, 20000 + cport, 80, Flags::Ack, t);
    }
    assert_eq!(m.sync_queued(), 40);
    assert_eq!(m.sync_counters().queue_full, 60);
}

#[test]
fn refresh_period_resends_quiet_connections_by_time() {
    // "3 0" with sync_refresh_period 5: a connection is sent again once its
    // expiry moved by 5 s, however few packets it carries.
    let (mut m, _, _) = pair(FwdMethod::Route);
    let mut s = *m.sysctls();
    s.set("sync_threshold", "3 0").unwrap();
    s.set("sync_refresh_period", "5").unwrap();
    m.set_sysctls(s);
    let t = Instant::from_secs(10);
    client_pkt(&mut m, 40000, 80, Flags::Syn, t);
    client_pkt(&mut m, 40000, 80, Flags::Ack, t);
    assert_eq!(take(&mut m).len(), 1, "sent once established");
    client_pkt(&mut m, 40000, 80, Flags::Ack, t + Duration::from_secs(2));
    assert!(take(&mut m).is_empty(), "2 s later: not yet");
    client_pkt(&mut m, 40000, 80, Flags::Ack, t + Duration::from_secs(6));
    assert_eq!(take(&mut m).len(), 1, "6 s later: again");
}
