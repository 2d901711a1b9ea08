//! Snapshots of `/proc/net/ip_vs` and `/proc/net/ip_vs_stats`.

mod format_fixtures;

use format_fixtures::*;
use insta::assert_snapshot;
use rvs_proto::IPVS_VERSION_CODE;
use rvsadm::format;

#[test]
fn format_proc_ip_vs() {
    assert_snapshot!(
        "proc_ip_vs",
        visible(&format::proc_ip_vs(IPVS_VERSION_CODE, 4096, &big_table()))
    );
}

#[test]
fn format_proc_ip_vs_empty() {
    assert_snapshot!(
        "proc_ip_vs_empty",
        visible(&format::proc_ip_vs(IPVS_VERSION_CODE, 4096, &[]))
    );
}

#[test]
fn format_proc_ip_vs_stats() {
    assert_snapshot!(
        "proc_ip_vs_stats_big",
        visible(&format::proc_ip_vs_stats(
            &stats(
                0xFFFF_FFFF,
                0x1_0000_0000,
                0x1234_5678_9ABC,
                0xFFFF_FFFF_FFFF_FFFF,
                0x1_0000_0000_0000_0000u128 as u64,
            ),
            &rates(0, 1, 0xABCDEF, 0x1234_5678_9ABC_DEF0, 16),
        ))
    );
}
