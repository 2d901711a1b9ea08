//! `--pe sip`: IPVS's SIP persistence engine. A persistent UDP service
//! with it keys its templates by client network *and* SIP Call-ID
//! (`ip_vs_sip_ct_match`), so the calls of one client (a SIP proxy) are
//! spread over the real servers and each call's messages stick to one; a
//! datagram without a Call-ID falls back to the client's template. The
//! templates carry the Call-ID in listings and in sync messages.

use rvs_core::conn::flags;
use rvs_core::engine::{Action, Engine};
use rvs_core::service::{SVC_F_ONEPACKET, SVC_F_PERSISTENT, ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, Instant, Protocol};
use rvs_wire::ipvs_sync::Version;

mod common;
use common::*;

fn sip_key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(VIP),
        port: 5060,
    }
}

/// A persistent UDP service on 5060, rr over two real servers; with the
/// SIP engine when `pe`, one-packet scheduling when `ops`.
fn sip_engine(pe: bool, ops: bool) -> Engine {
    let mut e = engine();
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    cfg.flags = SVC_F_PERSISTENT | if ops { SVC_F_ONEPACKET } else { 0 };
    cfg.timeout = 360;
    cfg.pe = pe.then(|| "sip".into());
    e.add_service(sip_key(), cfg).unwrap();
    for rs in [RS1, RS2] {
        e.add_dest(&sip_key(), &DestConfig::new(v4(rs), 5060), Instant::ZERO)
            .unwrap();
    }
    e
}

fn invite(call: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bK776\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The real server (its MAC) a datagram from the proxy's `sport` goes to.
fn send(e: &mut Engine, sport: u16, payload: &[u8], now: Instant) -> [u8; 6] {
    let mut f = udp_frame((CIP, sport), (VIP, 5060), payload);
    match run(e, &mut f, CLIENT_PORT, now) {
        Action::Forward { start, .. } => f[start..start + 6].try_into().unwrap(),
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// The templates: (Call-ID, the cport a listing shows).
fn templates(e: &Engine) -> Vec<(Option<Vec<u8>>, u16)> {
    let mut t: Vec<_> = e
        .conns()
        .iter()
        .filter(|(_, c)| c.is_template())
        .map(|(id, c)| {
            (
                e.conns().pe_data(id).map(<[u8]>::to_vec),
                e.conns().shown_cport(id, c),
            )
        })
        .collect();
    t.sort();
    t
}

#[test]
fn calls_of_one_client_are_spread_and_each_sticks() {
    let mut e = sip_engine(true, true);
    let t = Instant::from_secs(1);
    // One proxy, one source port: with -o every datagram is scheduled.
    let a = send(&mut e, 5060, &invite("call-a@proxy"), t);
    let b = send(&mut e, 5060, &invite("call-b@proxy"), t);
    assert_ne!(a, b, "two calls, rr: two servers");
    for _ in 0..5 {
        assert_eq!(send(&mut e, 5060, &invite("call-a@proxy"), t), a);
        assert_eq!(send(&mut e, 5060, &invite("call-b@proxy"), t), b);
    }
    // No Call-ID: the client's own template (the default persistence).
    let plain = send(&mut e, 5060, b"keep-alive\r\n", t);
    for _ in 0..3 {
        assert_eq!(send(&mut e, 5060, b"keep-alive\r\n", t), plain);
    }
    assert_eq!(
        templates(&e),
        vec![
            (None, 0),
            (Some(b"call-a@proxy".to_vec()), 0),
            (Some(b"call-b@proxy".to_vec()), 0)
        ]
    );
    // Each template counts on its server (persistconns).
    let svc = e
        .services()
        .get(e.services().find(&sip_key()).unwrap())
        .unwrap();
    assert_eq!(svc.dests.iter().map(|d| d.persistconns).sum::<u32>(), 3);

    // The templates expire on their own; the Call-ID goes with them.
    e.poll(t + core::time::Duration::from_secs(400));
    assert_eq!(e.conns().len(), 0);
    let c = send(
        &mut e,
        5060,
        &invite("call-c@proxy"),
        t + core::time::Duration::from_secs(401),
    );
    assert!(c == RS1_MAC || c == RS2_MAC);
    assert_eq!(templates(&e), vec![(Some(b"call-c@proxy".to_vec()), 0)]);
}

#[test]
fn without_the_engine_the_client_sticks_to_one_server() {
    let mut e = sip_engine(false, true);
    let t = Instant::from_secs(1);
    let a = send(&mut e, 5060, &invite("call-a@proxy"), t);
    for call in ["call-b@proxy", "call-c@proxy", "call-d@proxy"] {
        assert_eq!(send(&mut e, 5060, &invite(call), t), a);
    }
    assert_eq!(templates(&e), vec![(None, 0)]);
}

#[test]
fn a_gone_servers_call_is_scheduled_again() {
    let mut e = sip_engine(true, true);
    let t = Instant::from_secs(1);
    let a = send(&mut e, 5060, &invite("call-a@proxy"), t);
    let (gone, other) = if a == RS1_MAC {
        (RS1, RS2_MAC)
    } else {
        (RS2, RS1_MAC)
    };
    let mut d = DestConfig::new(v4(gone), 5060);
    d.weight = 0;
    e.edit_dest(&sip_key(), &d).unwrap();
    // Weight 0 keeps the template valid (expire_quiescent_template is 0)…
    assert_eq!(send(&mut e, 5060, &invite("call-a@proxy"), t), a);
    // …deleting the server does not.
    e.delete_dest(&sip_key(), v4(gone), 5060, t).unwrap();
    assert_eq!(send(&mut e, 5060, &invite("call-a@proxy"), t), other);
    assert_eq!(send(&mut e, 5060, &invite("call-a@proxy"), t), other);
}

/// A master's templates reach the backup with their Call-IDs (the sync
/// protocol's PE_DATA and PE_NAME options; their cport 0), and the
/// backup, taking over, sends each call where the master did.
#[test]
fn templates_sync_with_their_call_ids() {
    let t = Instant::from_secs(1);
    for ops in [true, false] {
        let mut m = sip_engine(true, ops);
        m.set_sync_master(true);
        let mut b = sip_engine(true, ops);
        b.set_sync_backup(true);
        let mut sent = Vec::new();
        // Three datagrams of each call: the sync threshold (3).
        for (i, call) in ["call-a@proxy", "call-b@proxy"].iter().enumerate() {
            let sport = if ops { 5060 } else { 6000 + i as u16 };
            for _ in 0..3 {
                sent.push((*call, send(&mut m, sport, &invite(call), t)));
            }
        }
        let mut taken = Vec::new();
        m.take_sync(&mut taken, usize::MAX);
        let pe: Vec<_> = taken
            .iter()
            .map(|e| e.entry())
            .filter(|e| e.flags & flags::TEMPLATE != 0)
            .map(|e| {
                assert_eq!(e.cport, 0, "a template's cport is 0 on the wire");
                assert_eq!(e.pe_name, Some(&b"sip"[..]));
                e.pe_data.unwrap().to_vec()
            })
            .collect();
        assert!(pe.contains(&b"call-a@proxy".to_vec()), "{ops}: {pe:?}");
        assert!(pe.contains(&b"call-b@proxy".to_vec()), "{ops}: {pe:?}");
        for e in &taken {
            b.apply_sync(&e.entry(), Version::V1, t);
        }
        assert_eq!(templates(&b), templates(&m), "{ops}");
        // The backup takes over: each call (from a port of its own: without
        // -o a UDP connection keeps its server) to the master's server.
        b.set_sync_backup(false);
        for (i, (call, mac)) in sent.iter().enumerate() {
            let sport = 7000 + i as u16 / 3;
            assert_eq!(send(&mut b, sport, &invite(call), t), *mac, "{ops}: {call}");
        }
        // An engine the backup does not have is refused.
        let mut odd = taken[0].entry();
        odd.pe_name = Some(b"rtsp");
        odd.pe_data = Some(b"x");
        assert!(matches!(
            b.apply_sync(&odd, Version::V1, t),
            rvs_core::engine::SyncApplied::Refused(_)
        ));
    }
}

/// A restart hands the templates over with their Call-IDs.
#[test]
fn snapshot_keeps_call_ids() {
    let t = Instant::from_secs(1);
    let mut m = sip_engine(true, true);
    send(&mut m, 5060, &invite("call-a@proxy"), t);
    let mut snap = Vec::new();
    m.sync_snapshot(&mut snap);
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].pe_data.as_deref(), Some(&b"call-a@proxy"[..]));
    let mut b = sip_engine(true, true);
    b.restore_conn(&snap[0].entry(), t);
    assert_eq!(templates(&b), vec![(Some(b"call-a@proxy".to_vec()), 0)]);
}
