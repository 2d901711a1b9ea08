//! The state machines: the TCP and SCTP tables against the kernel's, typical
//! flows, state names and timeouts.

use super::*;

// ===========================================================================
// TCP state table

/// The reference's TCP table (§5.3), re-typed as text.
const TCP_REFERENCE: &str = "
INPUT
 syn: SR ES ES SR SR SR SR SR SR SR SR
 fin: CL CW SS TW TW TW CL CW LA LI TW
 ack: ES ES SS ES FW TW CL CW CL LI ES
 rst: CL CL CL SR CL CL CL CL LA LI SR
OUTPUT
 syn: SS ES SS SR SS SS SS SS SS LI SR
 fin: TW FW SS TW FW TW CL TW LA LI TW
 ack: ES ES SS ES FW TW CL CW LA ES ES
 rst: CL CL SS CL CL TW CL CL CL CL CL
INPUT-ONLY
 syn: SR ES ES SR SR SR SR SR SR SR SR
 fin: CL FW SS TW FW TW CL CW LA LI TW
 ack: ES ES SS ES FW TW CL CW CL LI ES
 rst: CL CL CL SR CL CL CL CL LA LI CL
";

fn tcp_abbrev(s: &str) -> u8 {
    [
        "NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA",
    ]
    .iter()
    .position(|&a| a == s)
    .unwrap_or_else(|| panic!("bad abbreviation {s}")) as u8
}

#[test]
fn tcp_table_matches_reference() {
    let mut dir = Direction::Input;
    let mut rows = 0;
    for line in TCP_REFERENCE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line {
            "INPUT" => dir = Direction::Input,
            "OUTPUT" => dir = Direction::Output,
            "INPUT-ONLY" => dir = Direction::InputOnly,
            _ => {
                let (ev, cols) = line.split_once(':').unwrap();
                let f = match ev {
                    "syn" => tcp_flags::SYN,
                    "fin" => tcp_flags::FIN,
                    "ack" => tcp_flags::ACK,
                    "rst" => tcp_flags::RST,
                    _ => panic!("{ev}"),
                };
                let cols: Vec<u8> = cols.split_whitespace().map(tcp_abbrev).collect();
                assert_eq!(cols.len(), 11);
                for (cur, &want) in cols.iter().enumerate() {
                    assert_eq!(
                        tcp_transition(cur as u8, dir, f),
                        want,
                        "{dir:?} {ev} from {}",
                        TcpState::from_u8(cur as u8).unwrap().name()
                    );
                }
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 12);
}

#[test]
fn tcp_event_priority_and_no_flags() {
    use tcp_flags::*;
    let es = TcpState::Established as u8;
    for d in [Direction::Input, Direction::Output, Direction::InputOnly] {
        let rst = tcp_transition(es, d, RST);
        assert_eq!(tcp_transition(es, d, RST | SYN | FIN | ACK), rst);
        let syn = tcp_transition(TcpState::None as u8, d, SYN);
        assert_eq!(
            tcp_transition(TcpState::None as u8, d, SYN | FIN | ACK),
            syn
        );
        let fin = tcp_transition(es, d, FIN);
        assert_eq!(tcp_transition(es, d, FIN | ACK | PSH), fin);
        // None of RST/SYN/FIN/ACK: CLOSE.
        for cur in 0..11 {
            assert_eq!(tcp_transition(cur, d, 0), TcpState::Close as u8);
            assert_eq!(tcp_transition(cur, d, PSH), TcpState::Close as u8);
        }
        // Out-of-range current state.
        assert_eq!(tcp_transition(11, d, ACK), TcpState::Close as u8);
    }
}

#[test]
fn state_names() {
    let names = [
        "NONE",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "SYNACK",
    ];
    for (i, n) in names.iter().enumerate() {
        assert_eq!(state_name(PROTO_TCP, 0, i as u8), *n);
    }
    assert_eq!(state_name(PROTO_TCP, 0, 11), "ERR!");
    assert_eq!(state_name(PROTO_TCP, 0, 255), "ERR!");
    assert_eq!(state_name(PROTO_UDP, 0, 0), "UDP");
    assert_eq!(state_name(PROTO_UDP, 0, 1), "ERR!");
    let sctp = [
        "NONE",
        "INIT1",
        "INIT",
        "C-SENT",
        "C-REPLIED",
        "C-WAIT",
        "COOKIE",
        "C-ECHOED",
        "ESTABLISHED",
        "S-SENT",
        "S-RECEIVED",
        "S-ACK-SENT",
        "REJECTED",
        "CLOSED",
    ];
    for (i, n) in sctp.iter().enumerate() {
        assert_eq!(state_name(PROTO_SCTP, 0, i as u8), *n);
    }
    assert_eq!(state_name(PROTO_SCTP, 0, 14), "ERR!");
    // Templates, whatever the protocol (fwmark templates are protocol 0).
    for p in [0, PROTO_TCP, PROTO_UDP, PROTO_SCTP] {
        assert_eq!(state_name(p, flags::TEMPLATE, 0), "NONE");
        assert_eq!(state_name(p, flags::TEMPLATE, 1), "ASSURED");
        assert_eq!(state_name(p, flags::TEMPLATE, 2), "ERR!");
    }
    assert_eq!(state_name(0, 0, 0), "NONE");
    assert_eq!(state_name(1, 0, 0), "ERR!");
    assert_eq!(state::proto_name(0), Some("IP"));
    assert_eq!(state::proto_name(6), Some("TCP"));
    assert_eq!(state::proto_name(99), None);
    assert!(TcpState::ALL.iter().all(|s| s.is_active()
        == matches!(
            s,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )));
}

#[test]
fn default_timeouts_and_set() {
    let mut t = Timeouts::default();
    let want_s = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
    for (i, s) in want_s.iter().enumerate() {
        assert_eq!(t.tcp_ms(i as u8), s * 1000, "tcp state {i}");
    }
    assert_eq!(t.tcp_ms(11), 2000);
    assert_eq!(t.udp, 300_000);
    let sctp_s = [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61];
    for (i, s) in sctp_s.iter().enumerate() {
        assert_eq!(t.sctp_ms(i as u8), s * 1000, "sctp state {i}");
    }
    assert_eq!(
        (t.tcp_established_secs(), t.tcp_fin_secs(), t.udp_secs()),
        (900, 120, 300)
    );
    t.set_tcp_established(0);
    t.set_tcp_fin(30);
    t.set_udp(0);
    assert_eq!(
        (t.tcp_established_secs(), t.tcp_fin_secs(), t.udp_secs()),
        (900, 30, 300)
    );
    t.set_tcp_established(2_678_400);
    t.set_udp(5);
    assert_eq!(
        (t.tcp_established_secs(), t.tcp_fin_secs(), t.udp_secs()),
        (2_678_400, 30, 5)
    );
    // Only those three change.
    assert_eq!(t.tcp_ms(TcpState::TimeWait as u8), 120_000);
}

// ===========================================================================
// Typical flows

#[test]
fn dr_flow_syn_ack_fin() {
    use tcp_flags::*;
    let t = Timeouts::default();
    let now = secs(100);
    let mut c = tcp(4000, dr_flags(), 3000, now);

    assert_eq!(
        tcp_update(&mut c, Direction::Input, SYN, &t, now),
        Activity::ToActive
    );
    assert_eq!(c.state_name(), "SYN_RECV");
    assert_eq!(c.timeout_ms, 60_000);
    assert_eq!(c.expires, secs(160));
    assert!(!c.is_inactive());
    assert_ne!(c.flags & flags::NOOUTPUT, 0, "input keeps NOOUTPUT");

    let now = secs(101);
    assert_eq!(
        tcp_update(&mut c, Direction::Input, ACK, &t, now),
        Activity::Unchanged
    );
    assert_eq!(c.state_name(), "ESTABLISHED");
    assert_eq!(c.expires, secs(1001));
    // Data keeps ESTABLISHED and refreshes.
    let now = secs(500);
    assert_eq!(
        tcp_update(&mut c, Direction::Input, ACK | PSH, &t, now),
        Activity::Unchanged
    );
    assert_eq!(c.expires, secs(1400));

    // FIN: INPUT-ONLY table, ES -> FIN_WAIT (the INPUT table would say CLOSE_WAIT).
    let now = secs(600);
    assert_eq!(
        tcp_update(&mut c, Direction::Input, FIN | ACK, &t, now),
        Activity::ToInactive
    );
    assert_eq!(c.state_name(), "FIN_WAIT");
    assert_eq!(c.timeout_ms, 120_000);
    assert!(c.is_inactive());
    // Further ACKs keep FIN_WAIT; the timer keeps being refreshed.
    let now = secs(650);
    assert_eq!(
        tcp_update(&mut c, Direction::Input, ACK, &t, now),
        Activity::Unchanged
    );
    assert_eq!(c.state_name(), "FIN_WAIT");
    assert_eq!(c.expires, secs(770));
}

#[test]
fn nat_full_conversation() {
    use tcp_flags::*;
    let t = Timeouts::default();
    let mut c = mk(
        PROTO_TCP,
        ("1.1.1.1", 4000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 8080),
        nat_flags(),
        3000,
        secs(0),
    );
    let steps: &[(Direction, u8, &str, Activity, u32)] = &[
        (Direction::Input, SYN, "SYN_RECV", Activity::ToActive, 60),
        (
            Direction::Output,
            SYN | ACK,
            "SYN_RECV",
            Activity::Unchanged,
            60,
        ),
        (
            Direction::Input,
            ACK,
            "ESTABLISHED",
            Activity::Unchanged,
            900,
        ),
        (
            Direction::Input,
            ACK | PSH,
            "ESTABLISHED",
            Activity::Unchanged,
            900,
        ),
        (
            Direction::Output,
            ACK | PSH,
            "ESTABLISHED",
            Activity::Unchanged,
            900,
        ),
        // Client closes first.
        (
            Direction::Input,
            FIN | ACK,
            "CLOSE_WAIT",
            Activity::ToInactive,
            60,
        ),
        (
            Direction::Output,
            ACK,
            "CLOSE_WAIT",
            Activity::Unchanged,
            60,
        ),
        (
            Direction::Output,
            FIN | ACK,
            "TIME_WAIT",
            Activity::Unchanged,
            120,
        ),
        (Direction::Input, ACK, "TIME_WAIT", Activity::Unchanged, 120),
    ];
    for (i, &(dir, f, name, act, timeout)) in steps.iter().enumerate() {
        let now = secs(i as u64);
        assert_eq!(tcp_update(&mut c, dir, f, &t, now), act, "step {i}");
        assert_eq!(c.state_name(), name, "step {i}");
        assert_eq!(c.timeout_ms, timeout * 1000, "step {i}");
        assert_eq!(c.expires, secs(i as u64 + u64::from(timeout)), "step {i}");
    }
    assert_eq!(c.flags & flags::NOOUTPUT, 0);
}

#[test]
fn rst_closes_and_deactivates() {
    use tcp_flags::*;
    let t = Timeouts::default();
    let mut c = tcp(4000, nat_flags(), 3000, secs(0));
    tcp_update(&mut c, Direction::Input, SYN, &t, secs(0));
    tcp_update(&mut c, Direction::Input, ACK, &t, secs(1));
    assert_eq!(
        tcp_update(&mut c, Direction::Input, RST | ACK, &t, secs(2)),
        Activity::ToInactive
    );
    assert_eq!(c.state_name(), "CLOSE");
    assert_eq!(c.expires, secs(12));
    // A SYN on CLOSE re-opens it: SYN_RECV, active again.
    assert_eq!(
        tcp_update(&mut c, Direction::Input, SYN, &t, secs(3)),
        Activity::ToActive
    );
    assert_eq!(c.state_name(), "SYN_RECV");
}

#[test]
fn nooutput_cleared_by_output_packet() {
    use tcp_flags::*;
    let t = Timeouts::default();
    let mut c = tcp(4000, dr_flags(), 3000, secs(0));
    tcp_update(&mut c, Direction::Input, SYN, &t, secs(0));
    tcp_update(&mut c, Direction::Input, ACK, &t, secs(0));
    tcp_update(&mut c, Direction::Output, ACK, &t, secs(0));
    assert_eq!(c.flags & flags::NOOUTPUT, 0);
    // Now the INPUT table applies: FIN from ES is CLOSE_WAIT.
    tcp_update(&mut c, Direction::Input, FIN, &t, secs(1));
    assert_eq!(c.state_name(), "CLOSE_WAIT");
}

#[test]
fn state_unchanged_keeps_counters_even_if_flag_mismatch() {
    // The kernel only flips INACTIVE on a state *change*.
    let t = Timeouts::default();
    let mut c = tcp(4000, nat_flags(), 3000, secs(0));
    c.state = TcpState::Established as u8;
    assert_eq!(
        tcp_update(&mut c, Direction::Input, tcp_flags::ACK, &t, secs(0)),
        Activity::Unchanged
    );
    assert!(c.is_inactive());
}

#[test]
fn udp_and_one_packet() {
    let t = Timeouts::default();
    let mut c = udp(53, dr_flags(), 3000, secs(0));
    assert_eq!(udp_update(&mut c, &t, secs(10)), Activity::Unchanged);
    assert_eq!(c.state_name(), "UDP");
    assert_eq!(c.expires, secs(310));
    assert!(c.is_inactive());
    c.flags |= flags::ONE_PACKET;
    udp_update(&mut c, &t, secs(20));
    assert_eq!(c.expires, secs(20));
}

// ===========================================================================
// SCTP

/// The kernel's SCTP table (`ip_vs_proto_sctp.c`), re-typed as text.
const SCTP_REFERENCE: &str = "
INPUT
 d:   ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
 i:   I1 IN IN CS CR CW CO CE ES SS SR SA IN IN
 i_a: CW CW CW CS CR CO CO CE ES SS SR SA RJ CL
 c_e: CR IN IN CR CR CW CO CE ES SS SR SA RJ CL
 c_a: ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL
 s:   SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
 s_a: CL IN IN CS CR CW CO CE ES CL SR CL RJ CL
 s_c: CL CL CL CS CR CW CO CE ES SS SR CL RJ CL
 err: CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL
 ab:  CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
OUTPUT
 d:   ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
 i:   CW CW CW CW CW CW CW CW ES CW CW CW CW CW
 i_a: CS CS CS CS CR CW CO CE ES SS SR SA RJ CL
 c_e: CE CE CE CE CE CE CE CE ES SS SR SA RJ CL
 c_a: ES ES ES ES ES ES ES ES ES SS SR SA RJ CL
 s:   SS SS SS SS SS SS SS SS SS SS SR SA RJ CL
 s_a: SA SA SA SA SA CW CO CE ES SA SA SA RJ CL
 s_c: CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
 err: CL CL CL CL CL CW CO CE ES SS SR SA RJ CL
 ab:  CL RJ CL CL CL CL CL CL CL CL CL CL CL CL
INPUT-ONLY
 d:   ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL
 i:   I1 IN IN IN IN IN CO CE ES SS SR SA IN IN
 i_a: CE CE CE CE CE CE CO CE ES SS SR SA RJ CL
 c_e: ES ES ES ES ES ES CO CE ES SS SR SA RJ CL
 c_a: ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL
 s:   SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
 s_a: CL IN IN CS CR CW CO CE CL CL SR CL RJ CL
 s_c: CL CL CL CL CL CW CO CE ES SS CL CL RJ CL
 err: CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
 ab:  CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
";

#[test]
fn sctp_table_matches_kernel() {
    let abbrev = [
        "NO", "I1", "IN", "CS", "CR", "CW", "CO", "CE", "ES", "SS", "SR", "SA", "RJ", "CL",
    ];
    let events = [
        ("d", SctpEvent::Data),
        ("i", SctpEvent::Init),
        ("i_a", SctpEvent::InitAck),
        ("c_e", SctpEvent::CookieEcho),
        ("c_a", SctpEvent::CookieAck),
        ("s", SctpEvent::Shutdown),
        ("s_a", SctpEvent::ShutdownAck),
        ("s_c", SctpEvent::ShutdownComplete),
        ("err", SctpEvent::Error),
        ("ab", SctpEvent::Abort),
    ];
    let mut dir = Direction::Input;
    let mut rows = 0;
    for line in SCTP_REFERENCE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line {
            "INPUT" => dir = Direction::Input,
            "OUTPUT" => dir = Direction::Output,
            "INPUT-ONLY" => dir = Direction::InputOnly,
            _ => {
                let (ev, cols) = line.split_once(':').unwrap();
                let ev = events.iter().find(|e| e.0 == ev).unwrap().1;
                let cols: Vec<u8> = cols
                    .split_whitespace()
                    .map(|a| abbrev.iter().position(|&x| x == a).unwrap() as u8)
                    .collect();
                assert_eq!(cols.len(), 14);
                for (cur, &want) in cols.iter().enumerate() {
                    assert_eq!(
                        sctp_transition(cur as u8, dir, ev),
                        want,
                        "{dir:?} {ev:?} from {cur}"
                    );
                }
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 30);
}

#[test]
fn sctp_events_from_chunks() {
    use sctp_chunk::*;
    assert_eq!(sctp_event(DATA, None), SctpEvent::Data);
    assert_eq!(sctp_event(SACK, None), SctpEvent::Data);
    assert_eq!(sctp_event(HEARTBEAT, None), SctpEvent::Data);
    assert_eq!(sctp_event(HEARTBEAT_ACK, None), SctpEvent::Data);
    assert_eq!(sctp_event(ECN_ECNE, None), SctpEvent::Data);
    assert_eq!(sctp_event(ECN_CWR, None), SctpEvent::Data);
    assert_eq!(sctp_event(200, None), SctpEvent::Data);
    assert_eq!(sctp_event(INIT, None), SctpEvent::Init);
    assert_eq!(sctp_event(INIT_ACK, None), SctpEvent::InitAck);
    assert_eq!(sctp_event(ABORT, None), SctpEvent::Abort);
    assert_eq!(sctp_event(SHUTDOWN, None), SctpEvent::Shutdown);
    assert_eq!(sctp_event(SHUTDOWN_ACK, None), SctpEvent::ShutdownAck);
    assert_eq!(
        sctp_event(SHUTDOWN_COMPLETE, None),
        SctpEvent::ShutdownComplete
    );
    assert_eq!(sctp_event(ERROR, None), SctpEvent::Error);
    assert_eq!(sctp_event(COOKIE_ECHO, None), SctpEvent::CookieEcho);
    assert_eq!(sctp_event(COOKIE_ACK, Some(DATA)), SctpEvent::CookieAck);
    assert_eq!(sctp_event(COOKIE_ECHO, Some(ABORT)), SctpEvent::Abort);
    assert_eq!(sctp_event(COOKIE_ACK, Some(ABORT)), SctpEvent::Abort);
    assert_eq!(sctp_event(DATA, Some(ABORT)), SctpEvent::Data);
}

#[test]
fn sctp_flows() {
    let t = Timeouts::default();
    // NAT: four-way handshake seen in both directions.
    let mut c = mk(
        PROTO_SCTP,
        ("1.1.1.1", 5000),
        ("10.0.0.1", 3868),
        ("192.168.1.10", 3868),
        nat_flags(),
        3000,
        secs(0),
    );
    let steps = [
        (
            Direction::Input,
            SctpEvent::Init,
            SctpState::Init1,
            Activity::Unchanged,
            4,
        ),
        (
            Direction::Output,
            SctpEvent::InitAck,
            SctpState::CookieSent,
            Activity::Unchanged,
            61,
        ),
        (
            Direction::Input,
            SctpEvent::CookieEcho,
            SctpState::CookieReplied,
            Activity::Unchanged,
            61,
        ),
        (
            Direction::Output,
            SctpEvent::CookieAck,
            SctpState::Established,
            Activity::ToActive,
            900,
        ),
        (
            Direction::Input,
            SctpEvent::Data,
            SctpState::Established,
            Activity::Unchanged,
            900,
        ),
        (
            Direction::Input,
            SctpEvent::Shutdown,
            SctpState::ShutdownReceived,
            Activity::ToInactive,
            61,
        ),
        (
            Direction::Output,
            SctpEvent::ShutdownAck,
            SctpState::ShutdownAckSent,
            Activity::Unchanged,
            61,
        ),
        (
            Direction::Input,
            SctpEvent::ShutdownComplete,
            SctpState::Closed,
            Activity::Unchanged,
            61,
        ),
    ];
    for (i, (dir, ev, st, act, to)) in steps.into_iter().enumerate() {
        assert_eq!(sctp_update(&mut c, dir, ev, &t, secs(0)), act, "step {i}");
        assert_eq!(c.state, st as u8, "step {i}");
        assert_eq!(c.timeout_ms, to * 1000, "step {i}");
    }
    assert!(is_new_conn_expected(&c, 1));

    // DR: only client packets, INPUT-ONLY table.
    let mut c = mk(
        PROTO_SCTP,
        ("1.1.1.1", 5000),
        ("10.0.0.1", 3868),
        ("192.168.1.10", 3868),
        dr_flags(),
        3000,
        secs(0),
    );
    sctp_update(&mut c, Direction::Input, SctpEvent::Init, &t, secs(0));
    assert_eq!(c.state_name(), "INIT1");
    assert_eq!(
        sctp_update(&mut c, Direction::Input, SctpEvent::CookieEcho, &t, secs(0)),
        Activity::ToActive
    );
    assert_eq!(c.state_name(), "ESTABLISHED");
    // An INIT rejected by ABORT.
    let mut c = mk(
        PROTO_SCTP,
        ("1.1.1.1", 5000),
        ("10.0.0.1", 3868),
        ("192.168.1.10", 3868),
        nat_flags(),
        3000,
        secs(0),
    );
    sctp_update(&mut c, Direction::Input, SctpEvent::Init, &t, secs(0));
    sctp_update(&mut c, Direction::Output, SctpEvent::Abort, &t, secs(0));
    assert_eq!(c.state_name(), "REJECTED");
    assert_eq!(c.timeout_ms, 4000);
}

#[test]
fn conn_reuse_rules() {
    let mut c = tcp(4000, dr_flags(), 3000, secs(0));
    for (st, m1, m3) in [
        (TcpState::TimeWait, true, true),
        (TcpState::Close, true, true),
        (TcpState::FinWait, false, true),
        (TcpState::Established, false, false),
        (TcpState::SynRecv, false, false),
    ] {
        c.state = st as u8;
        assert_eq!(is_new_conn_expected(&c, 1), m1, "{st:?} mode 1");
        assert_eq!(is_new_conn_expected(&c, 3), m3, "{st:?} mode 3");
    }
    // FIN_WAIT counts only with NOOUTPUT.
    c.state = TcpState::FinWait as u8;
    c.flags &= !flags::NOOUTPUT;
    assert!(!is_new_conn_expected(&c, 3));
    // Controlled conns never.
    c.state = TcpState::TimeWait as u8;
    c.control = Some(ConnId::from_index(3));
    assert!(!is_new_conn_expected(&c, 1));
    let u = mk(
        PROTO_UDP,
        ("1.1.1.1", 4000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        dr_flags(),
        3000,
        secs(0),
    );
    assert!(!is_new_conn_expected(&u, 3));
}

#[test]
fn conn_helpers() {
    let c = tcp(4000, dr_flags(), 898_500, secs(0));
    assert_eq!(c.expire_secs(secs(0)), 898);
    assert_eq!(c.expire_secs(secs(2000)), 0);
    assert_eq!(c.fwd(), flags::DROUTE);
    assert_eq!(fwmark_vaddr(false, 1), ip("0.0.0.1"));
    assert_eq!(fwmark_vaddr(false, 0x0102_0304), ip("1.2.3.4"));
    assert_eq!(fwmark_vaddr(true, 5), ip("0:5::"));
    assert_eq!(ConnId::from_index(0).index(), 0);
    assert_eq!(format!("{:?}", ConnId::from_index(9)), "ConnId(9)");
    assert_eq!(core::mem::size_of::<Option<ConnId>>(), 4);
}
