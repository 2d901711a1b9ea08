//! Snapshots of `ipvsadm -L` in every form over the big fixture table.
//!
//! Snapshots show every line end as `$` (see `format_fixtures::visible`),
//! so trailing padding is part of the contract.

mod format_fixtures;

use format_fixtures::*;
use insta::assert_snapshot;
use rvs_proto::{IPVS_VERSION_CODE, ServiceId};
use rvsadm::format::{self, ListFlags, Numeric};

fn all(f: ListFlags) -> String {
    visible(&format::list_all(
        IPVS_VERSION_CODE,
        4096,
        &big_table(),
        &f,
        &Fake,
    ))
}

fn n() -> ListFlags {
    ListFlags {
        numeric: true,
        ..ListFlags::default()
    }
}

fn names() -> ListFlags {
    ListFlags::default()
}

#[test]
fn format_list_empty_table() {
    let out = format::list_all(IPVS_VERSION_CODE, 4096, &[], &n(), &Numeric);
    assert_snapshot!("list_empty", visible(&out));
    let out = format::list_all(0x010203, 1 << 20, &[], &n(), &Numeric);
    assert_snapshot!("list_empty_other_version", visible(&out));
}

#[test]
fn format_list_default() {
    assert_snapshot!("list_default_numeric", all(n()));
    assert_snapshot!("list_default_names", all(names()));
    assert_snapshot!(
        "list_default_numeric_nosort",
        all(ListFlags {
            nosort: true,
            ..n()
        })
    );
}

#[test]
fn format_list_numeric_ignores_resolver() {
    let a = format::list_all(IPVS_VERSION_CODE, 4096, &big_table(), &n(), &Fake);
    let b = format::list_all(IPVS_VERSION_CODE, 4096, &big_table(), &n(), &Numeric);
    let c = format::list_all(IPVS_VERSION_CODE, 4096, &big_table(), &names(), &Numeric);
    assert_eq!(a, b);
    assert_eq!(a, c);
}

#[test]
fn format_list_stats() {
    let f = ListFlags { stats: true, ..n() };
    assert_snapshot!("list_stats_numeric", all(f));
    assert_snapshot!("list_stats_exact", all(ListFlags { exact: true, ..f }));
    assert_snapshot!(
        "list_stats_names",
        all(ListFlags {
            stats: true,
            ..names()
        })
    );
}

#[test]
fn format_list_rate() {
    let f = ListFlags { rate: true, ..n() };
    assert_snapshot!("list_rate_numeric", all(f));
    assert_snapshot!("list_rate_exact", all(ListFlags { exact: true, ..f }));
}

#[test]
fn format_list_thresholds() {
    assert_snapshot!(
        "list_thresholds_numeric",
        all(ListFlags {
            thresholds: true,
            ..n()
        })
    );
}

#[test]
fn format_list_persistent_conn() {
    assert_snapshot!(
        "list_persistent_conn_numeric",
        all(ListFlags {
            persistent_conn: true,
            ..n()
        })
    );
}

#[test]
fn format_list_tun_info() {
    assert_snapshot!(
        "list_tun_info_numeric",
        all(ListFlags {
            tun_info: true,
            ..n()
        })
    );
    assert_snapshot!(
        "list_tun_info_names_nosort",
        all(ListFlags {
            tun_info: true,
            nosort: true,
            ..names()
        })
    );
}

#[test]
fn format_list_precedence() {
    // stats > rate > thresholds > persistent-conn > tun-info, for the title
    // and every line.
    let every = ListFlags {
        numeric: true,
        stats: true,
        rate: true,
        thresholds: true,
        persistent_conn: true,
        tun_info: true,
        nosort: false,
        exact: false,
    };
    let only = |f: ListFlags| all(f);
    assert_eq!(only(every), only(ListFlags { stats: true, ..n() }));
    let every = ListFlags {
        stats: false,
        ..every
    };
    assert_eq!(only(every), only(ListFlags { rate: true, ..n() }));
    let every = ListFlags {
        rate: false,
        ..every
    };
    assert_eq!(
        only(every),
        only(ListFlags {
            thresholds: true,
            ..n()
        })
    );
    let every = ListFlags {
        thresholds: false,
        ..every
    };
    assert_eq!(
        only(every),
        only(ListFlags {
            persistent_conn: true,
            ..n()
        })
    );
    // --exact changes nothing outside --stats and --rate.
    assert_eq!(only(ListFlags { exact: true, ..n() }), only(n()),);
}

#[test]
fn format_list_one() {
    let table = big_table();
    let find = |id: ServiceId| table.iter().find(|s| s.spec.id == id).unwrap();
    let fwm1 = find(fwm(1, false));
    let sctp = find(addr_id(rvs_proto::Proto::Sctp, "2001:db8::1", 443));
    let tcp = find(addr_id(rvs_proto::Proto::Tcp, "10.0.0.1", 80));
    assert_snapshot!(
        "list_one_fwmark_tun_info",
        visible(&format::list_one(
            fwm1,
            &ListFlags {
                tun_info: true,
                ..n()
            },
            &Numeric
        ))
    );
    assert_snapshot!(
        "list_one_sctp_names",
        visible(&format::list_one(sctp, &names(), &Fake))
    );
    assert_snapshot!(
        "list_one_tcp_stats_exact_nosort",
        visible(&format::list_one(
            tcp,
            &ListFlags {
                stats: true,
                exact: true,
                nosort: true,
                ..n()
            },
            &Numeric
        ))
    );
    // No version header for a single service.
    assert!(format::list_one(tcp, &n(), &Numeric).starts_with("Prot LocalAddress:Port"));
}
