//! Snapshots of `ipvsadm -L -c` (names and numeric, with and without
//! `--persistent-conn`) and of `/proc/net/ip_vs_conn` and
//! `/proc/net/ip_vs_conn_sync`.

mod format_fixtures;

use format_fixtures::*;
use insta::assert_snapshot;
use rvsadm::format::{self, Numeric};

#[test]
fn format_conn_numeric() {
    assert_snapshot!(
        "conn_numeric",
        visible(&format::conns(&conn_table(), true, false, &Fake))
    );
}

#[test]
fn format_conn_names() {
    assert_snapshot!(
        "conn_names",
        visible(&format::conns(&conn_table(), false, false, &Fake))
    );
}

#[test]
fn format_conn_persistent_conn() {
    assert_snapshot!(
        "conn_persistent_conn_numeric",
        visible(&format::conns(&conn_table(), true, true, &Fake))
    );
    assert_snapshot!(
        "conn_persistent_conn_names",
        visible(&format::conns(&conn_table(), false, true, &Fake))
    );
}

#[test]
fn format_conn_empty() {
    assert_snapshot!(
        "conn_empty",
        visible(&format::conns(&[], true, false, &Numeric))
    );
    assert_snapshot!(
        "conn_empty_persistent_conn",
        visible(&format::conns(&[], true, true, &Numeric))
    );
}

#[test]
fn format_conn_pe_needs_both_words() {
    // ipvsadm's sscanf sees 11 fields only with a PE name and PE data;
    // otherwise the line keeps the 6-column form.
    let mut c = conn(
        17,
        ("10.1.1.1", 5060),
        ("10.0.0.3", 5060),
        ("192.168.1.30", 5060),
        "NONE",
        60,
        CONN_F_TEMPLATE,
        Some(("sip", "")),
    );
    let out = format::conns(std::slice::from_ref(&c), true, true, &Numeric);
    assert!(
        out.ends_with(" 10.0.0.3:5060      192.168.1.30:5060\n"),
        "{out}"
    );
    c.pe = Some(("sip".into(), "callid".into()));
    let out = format::conns(std::slice::from_ref(&c), true, true, &Numeric);
    assert!(
        out.ends_with(" 10.0.0.3:5060      192.168.1.30:5060 sip                callid\n"),
        "{out}"
    );
    let out = format::conns(std::slice::from_ref(&c), true, false, &Numeric);
    assert!(out.ends_with(" 192.168.1.30:5060\n"), "{out}");
}

#[test]
fn format_proc_ip_vs_conn() {
    assert_snapshot!(
        "proc_ip_vs_conn",
        visible(&format::proc_ip_vs_conn(&conn_table()))
    );
    assert_snapshot!(
        "proc_ip_vs_conn_empty",
        visible(&format::proc_ip_vs_conn(&[]))
    );
}

#[test]
fn format_proc_ip_vs_conn_sync() {
    assert_snapshot!(
        "proc_ip_vs_conn_sync",
        visible(&format::proc_ip_vs_conn_sync(&conn_table()))
    );
}
