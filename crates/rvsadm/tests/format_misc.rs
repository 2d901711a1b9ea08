//! `--timeout`, `--daemon` and `print_largenum` (including `--exact`).

mod format_fixtures;

use std::fmt::Write as _;

use format_fixtures::*;
use insta::assert_snapshot;
use rvs_proto::DaemonRole;
use rvsadm::format;

#[test]
fn format_timeouts() {
    let mut out = format::timeouts(900, 120, 300);
    out.push_str(&format::timeouts(0, 0, 0));
    out.push_str(&format::timeouts(2_678_400, 1, 86_400));
    assert_snapshot!("timeouts", visible(&out));
}

#[test]
fn format_daemons() {
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
            "bond0.100",
            255,
            9000,
            Some("ff02::1:81"),
            1234,
            255,
        ),
    ];
    assert_snapshot!("daemons", visible(&format::daemons(&d)));
    // Zero maxlen/port/ttl and no known group are left out.
    let d = vec![daemon(DaemonRole::Backup, "eth1", 5, 0, None, 0, 0)];
    assert_snapshot!("daemons_minimal", visible(&format::daemons(&d)));
    assert_eq!(format::daemons(&[]), "");
}

#[test]
fn format_largenum_table() {
    let values: &[u64] = &[
        0,
        7,
        12_345_678,
        99_999_999,
        100_000_000,
        123_456_789,
        999_999_999,
        1_000_000_000,
        98_765_432_101,
        99_999_999_999,
        100_000_000_000,
        99_999_999_999_999,
        100_000_000_000_000,
        123_456_789_012_345_678,
        u64::MAX,
    ];
    let mut out = String::new();
    for &v in values {
        let _ = writeln!(
            out,
            "[{}] [{}] {v}",
            format::print_largenum(v, false),
            format::print_largenum(v, true)
        );
    }
    assert_snapshot!("largenum", visible(&out));
}
