//! The example blocks of the interface reference (§2 "Output formats",
//! `ipvs-interface.md`), copied verbatim (trailing spaces included), must
//! come out of the formatters byte for byte.

mod format_fixtures;

use format_fixtures::*;
use rvs_proto::{
    DaemonRole, Fwd, IPVS_VERSION_CODE, Proto, SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2,
    ServiceInfo, TunKind,
};
use rvsadm::format::{self, ListFlags, Numeric};

/// Reference §2, the example block at line 443.
const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// Reference §2, the example block at line 450.
const TITLE: &str = concat!(
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
);

/// Reference §2, the example block at line 471.
const LIST_N: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  10.0.0.1:80 rr\n",
    "  -> 192.168.1.10:80              Masq    1      3          12        \n",
    "  -> 192.168.1.11:80              Route   2      0          0         \n",
    "UDP  10.0.0.1:53 wlc persistent 360 mask 255.255.255.0\n",
    "SCTP [2001:db8::1]:443 mh ops\n",
    "FWM  1 sh (sh-fallback,sh-port) persistent 360\n",
);

/// Reference §2, the example block at line 496.
const STATS: &str = concat!(
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80                        15  1234567        0  123456K   98765M\n",
    "  -> 192.168.1.10:80                    15  1234567        0  123456K   98765M\n",
);

/// Reference §2, the example block at line 517.
const RATE: &str = concat!(
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80                         2       10        8     1200     9000\n",
    "  -> 192.168.1.10:80                     2       10        8     1200     9000\n",
);

/// Reference §2, the example block at line 536.
const THRESHOLDS: &str = concat!(
    "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80 rr\n",
    "  -> 192.168.1.10:80              100        50         3          12        \n",
);

/// Reference §2, the example block at line 549.
const PERSISTENT_CONN: &str = concat!(
    "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80 rr persistent 360\n",
    "  -> 192.168.1.10:80              1         4           3          12        \n",
);

/// Reference §2, the example block at line 564.
const TUN_INFO: &str = concat!(
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
    "TCP  10.0.0.1:80 rr\n",
    "  -> 192.168.1.12:80              Tunnel  gue:6080:-c   1      0          0         \n",
    "  -> 192.168.1.10:80              Masq    n/a           1      0          0         \n",
);

/// Reference §2, the example block at line 575.
const TIMEOUT: &str = "Timeout (tcp tcpfin udp): 900 120 300\n";

/// Reference §2, the example block at line 586.
const DAEMON: &str = concat!(
    "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
    "backup sync daemon (mcast=eth1, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
);

/// Reference §2, the example block at line 595.
const CONN_TITLE: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination\n",
);

/// Reference §2, the example block at line 609.
const CONN_N: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination\n",
    "TCP 14:58  ESTABLISHED 172.16.0.5:51234   10.0.0.1:80        192.168.1.10:80\n",
    "IP  05:59  NONE        172.16.0.5:0       0.0.0.1:0          192.168.1.10:0\n",
);

/// Reference §2, the example block at line 647.
const SAVE_N: &str = concat!(
    "-A -t 10.0.0.1:80 -s rr\n",
    "-a -t 10.0.0.1:80 -r 192.168.1.10:80 -m -w 1\n",
    "-a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 2\n",
    "-A -u 10.0.0.1:53 -s wlc -p 360 -M 255.255.255.0\n",
    "-A -u [2001:db8::1]:5060 -s rr -p 360 --pe sip -o\n",
    "-A -f 1 -s sh -p 360 -b sh-fallback,sh-port\n",
    "-a -f 1 -r 192.168.1.12:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n",
);

/// Reference §2, the example block at line 659.
const PROC_IP_VS_HEADER: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n",
);

/// Reference §2, the example block at line 683.
const PROC_IP_VS_LINES: &str = concat!(
    "TCP  0A000001:0050 rr  \n",
    "  -> C0A8010A:0050      Masq    1      3          12        \n",
    "UDP  0A000001:0035 wlc ops  persistent 90000 FFFFFF00\n",
    "FWM  00000001 sh persistent 90000 FFFFFFFF\n",
);

/// Reference §2, the example block at line 699.
const PROC_IP_VS_CONN: &str = concat!(
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
    "TCP AC100005 C822 0A000001 0050 C0A8010A 0050 ESTABLISHED     898\n",
);

/// Reference §2, the example block at line 715.
const PROC_IP_VS_STATS: &str = concat!(
    "   Total Incoming Outgoing         Incoming         Outgoing\n",
    "   Conns  Packets  Packets            Bytes            Bytes\n",
    "       F   12D687        0          75BCD15       16FEE0E525\n",
    "\n",
    " Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n",
    "       2        A        8              4B0             2328\n",
);

/// The same `--stats` row with `--exact` (§2.3, inline).
const STATS_EXACT_ROW: &str =
    "TCP  10.0.0.1:80                        15  1234567        0 123456789 98765432101\n";

fn n() -> ListFlags {
    ListFlags {
        numeric: true,
        ..ListFlags::default()
    }
}

/// `TCP 10.0.0.1:80 rr` with 192.168.1.10:80 (Masq 1, 3/12, 4 persistent)
/// and 192.168.1.11:80 (Route 2), counters of §2.3/§2.4.
fn tcp80() -> ServiceInfo {
    let mut s = with_dests(
        svc(addr_id(Proto::Tcp, "10.0.0.1", 80), "rr"),
        vec![dest("192.168.1.11", 80, Fwd::Route, 2), {
            let mut d = conns(dest("192.168.1.10", 80, Fwd::Masq, 1), 3, 12, 4);
            d.spec.u_threshold = 100;
            d.spec.l_threshold = 50;
            d.stats = stats(15, 1_234_567, 0, 123_456_789, 98_765_432_101);
            d.rates = rates(2, 10, 8, 1200, 9000);
            d
        }],
    );
    s.stats = stats(15, 1_234_567, 0, 123_456_789, 98_765_432_101);
    s.rates = rates(2, 10, 8, 1200, 9000);
    s
}

/// Only the first dest (192.168.1.10) of [`tcp80`].
fn tcp80_one_dest() -> ServiceInfo {
    let mut s = tcp80();
    s.dests.remove(0);
    s
}

#[test]
fn format_reference_header_and_title() {
    let out = format::list_all(IPVS_VERSION_CODE, 4096, &[], &n(), &Numeric);
    assert_eq!(out, format!("{HEADER}{TITLE}"));
    // An empty table prints just the three header lines.
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn format_reference_list_numeric() {
    let table = vec![
        flags(
            svc(addr_id(Proto::Sctp, "2001:db8::1", 443), "mh"),
            SVC_F_ONEPACKET,
        ),
        persistent(
            flags(svc(fwm(1, false), "sh"), SVC_F_SCHED1 | SVC_F_SCHED2),
            360,
            0xffff_ffff,
        ),
        persistent(
            svc(addr_id(Proto::Udp, "10.0.0.1", 53), "wlc"),
            360,
            0xffff_ff00,
        ),
        tcp80(),
    ];
    let out = format::list_all(IPVS_VERSION_CODE, 4096, &table, &n(), &Numeric);
    assert_eq!(out, LIST_N);
    // Without -n but with nothing resolvable, the text is the same.
    let f = ListFlags::default();
    assert_eq!(
        format::list_all(IPVS_VERSION_CODE, 4096, &table, &f, &Numeric),
        LIST_N
    );
}

#[test]
fn format_reference_stats() {
    let f = ListFlags { stats: true, ..n() };
    assert_eq!(format::list_one(&tcp80_one_dest(), &f, &Numeric), STATS);
    let f = ListFlags { exact: true, ..f };
    let out = format::list_one(&tcp80_one_dest(), &f, &Numeric);
    assert_eq!(
        out.lines().nth(2).map(|l| format!("{l}\n")).as_deref(),
        Some(STATS_EXACT_ROW)
    );
}

#[test]
fn format_reference_rate() {
    let f = ListFlags { rate: true, ..n() };
    assert_eq!(format::list_one(&tcp80_one_dest(), &f, &Numeric), RATE);
}

#[test]
fn format_reference_thresholds() {
    let f = ListFlags {
        thresholds: true,
        ..n()
    };
    assert_eq!(
        format::list_one(&tcp80_one_dest(), &f, &Numeric),
        THRESHOLDS
    );
}

#[test]
fn format_reference_persistent_conn() {
    let f = ListFlags {
        persistent_conn: true,
        ..n()
    };
    let s = persistent(tcp80_one_dest(), 360, 0xffff_ffff);
    assert_eq!(format::list_one(&s, &f, &Numeric), PERSISTENT_CONN);
}

#[test]
fn format_reference_tun_info() {
    // The reference lists 192.168.1.12 before 192.168.1.10: the kernel's
    // order (newest first), i.e. --nosort; sorted, .10 would come first.
    let s = with_dests(
        svc(addr_id(Proto::Tcp, "10.0.0.1", 80), "rr"),
        vec![
            tunnel(
                dest("192.168.1.12", 80, Fwd::Tunnel, 1),
                TunKind::Gue,
                6080,
                0,
            ),
            dest("192.168.1.10", 80, Fwd::Masq, 1),
        ],
    );
    let f = ListFlags {
        tun_info: true,
        nosort: true,
        ..n()
    };
    assert_eq!(format::list_one(&s, &f, &Numeric), TUN_INFO);
}

#[test]
fn format_reference_timeout() {
    assert_eq!(format::timeouts(900, 120, 300), TIMEOUT);
}

#[test]
fn format_reference_daemon() {
    let d = vec![
        daemon(
            DaemonRole::Master,
            "eth0",
            0,
            1472,
            Some("224.0.0.81"),
            8848,
            1,
        ),
        daemon(
            DaemonRole::Backup,
            "eth1",
            5,
            1472,
            Some("224.0.0.81"),
            8848,
            1,
        ),
    ];
    assert_eq!(format::daemons(&d), DAEMON);
    assert_eq!(format::daemons(&[]), "");
}

#[test]
fn format_reference_conns() {
    assert_eq!(format::conns(&[], true, false, &Numeric), CONN_TITLE);
    let c = vec![
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
            ("192.168.1.10", 0),
            "NONE",
            359,
            CONN_F_TEMPLATE,
            None,
        ),
    ];
    assert_eq!(format::conns(&c, true, false, &Numeric), CONN_N);
}

#[test]
fn format_reference_save() {
    let table = vec![
        with_dests(
            persistent(
                flags(svc(fwm(1, false), "sh"), SVC_F_SCHED1 | SVC_F_SCHED2),
                360,
                0xffff_ffff,
            ),
            vec![tunnel(
                dest("192.168.1.12", 0, Fwd::Tunnel, 1),
                TunKind::Gue,
                6080,
                0,
            )],
        ),
        flags(
            pe(
                persistent(
                    svc(addr_id(Proto::Udp, "2001:db8::1", 5060), "rr"),
                    360,
                    128,
                ),
                "sip",
            ),
            SVC_F_ONEPACKET,
        ),
        persistent(
            svc(addr_id(Proto::Udp, "10.0.0.1", 53), "wlc"),
            360,
            0xffff_ff00,
        ),
        tcp80(),
    ];
    assert_eq!(format::save(&table, true, &Numeric), SAVE_N);
}

#[test]
fn format_reference_proc_ip_vs() {
    let table = vec![
        with_dests(
            svc(addr_id(Proto::Tcp, "10.0.0.1", 80), "rr"),
            vec![conns(dest("192.168.1.10", 80, Fwd::Masq, 1), 3, 12, 0)],
        ),
        flags(
            persistent(
                svc(addr_id(Proto::Udp, "10.0.0.1", 53), "wlc"),
                360,
                0xffff_ff00,
            ),
            SVC_F_ONEPACKET,
        ),
        persistent(
            flags(svc(fwm(1, false), "sh"), SVC_F_SCHED1 | SVC_F_SCHED2),
            360,
            0xffff_ffff,
        ),
    ];
    assert_eq!(
        format::proc_ip_vs(IPVS_VERSION_CODE, 4096, &table),
        format!("{PROC_IP_VS_HEADER}{PROC_IP_VS_LINES}")
    );
}

#[test]
fn format_reference_proc_ip_vs_conn() {
    let c = vec![conn(
        6,
        ("172.16.0.5", 51234),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        "ESTABLISHED",
        898,
        0,
        None,
    )];
    assert_eq!(format::proc_ip_vs_conn(&c), PROC_IP_VS_CONN);
}

#[test]
fn format_reference_proc_ip_vs_stats() {
    let out = format::proc_ip_vs_stats(
        &stats(15, 1_234_567, 0, 123_456_789, 98_765_432_101),
        &rates(2, 10, 8, 1200, 9000),
    );
    assert_eq!(out, PROC_IP_VS_STATS);
}

#[test]
fn format_reference_inline_examples() {
    // §2.1: address:port text and the service name column.
    let t = format::list_one(
        &svc(addr_id(Proto::Sctp, "2001:db8::1", 443), "rr"),
        &n(),
        &Numeric,
    );
    assert!(t.contains("\nSCTP [2001:db8::1]:443 rr\n"), "{t}");
    let t = format::list_one(
        &svc(addr_id(Proto::Tcp, "10.0.0.1", 80), "rr"),
        &ListFlags::default(),
        &Fake,
    );
    assert!(t.contains("\nTCP  www.example.com:http rr\n"), "{t}");
    let t = format::list_one(&svc(fwm(7, true), "rr"), &n(), &Numeric);
    assert!(t.contains("\nFWM  7 IPv6 rr\n"), "{t}");
    // §2.1: print_largenum.
    assert_eq!(format::print_largenum(99_999_999, false), " 99999999");
    assert_eq!(format::print_largenum(123_456_789, false), "  123456K");
    assert_eq!(format::print_largenum(123_456_789, true), " 123456789");
    assert_eq!(format::print_largenum(12_345_678, true), " 12345678");
    assert_eq!(format::print_largenum(98_765_432_101, true), " 98765432101");
}
