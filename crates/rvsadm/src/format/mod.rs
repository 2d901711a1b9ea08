//! ipvsadm's output formats, byte for byte.
//!
//! Every function here is pure: it renders values of the control API
//! (`rvs-proto`) into the exact text `ipvsadm` 1.31 (and, for the `proc_*`
//! functions, the Linux 6.6 kernel's `/proc/net/ip_vs*` files) would print
//! for the same table. Name look-ups go through a [`Resolver`] so the
//! non-numeric forms are testable: [`System`] asks the system (what ipvsadm
//! does), [`Numeric`] never resolves (what `-n` means).
//!
//! Reproduced quirks worth knowing (all from ipvsadm / libipvs 1.31 sources):
//! * sorting is glibc `qsort` (a top-down merge sort) with libipvs's
//!   comparators, which subtract unsigned values into an `int`: addresses
//!   and fwmarks that differ by 2^31 or more compare "backwards"
//!   (`200.0.0.1` sorts before `10.0.0.1`) and the order is not even
//!   transitive, so the exact merge sort is reproduced ([`sort`]);
//! * IPv4 service names are cut to 33 bytes and IPv4 destination names to
//!   28 bytes; an address:port text never exceeds 59 bytes (ipvsadm's
//!   60-byte buffer);
//! * for destinations, `--stats` and `--rate` show connections, packets and
//!   all rates truncated to their low 32 bits (libipvs decodes the dest's
//!   64-bit statistics with its 32-bit reader; byte counters are read
//!   correctly);
//! * fwmark services carry protocol TCP inside ipvsadm, so their
//!   destinations' ports resolve as TCP service names;
//! * `-c` output is what ipvsadm prints after re-parsing
//!   `/proc/net/ip_vs_conn`, produced here directly from [`ConnInfo`]
//!   values.
//!
//! [`ConnInfo`]: rvs_proto::ConnInfo

mod common;
mod conn;
mod list;
mod procfs;
pub mod sort;

use std::net::IpAddr;

pub use common::print_largenum;
pub use conn::{conn_line, conn_lines, conns, conns_header, proc_ip_vs_conn, proc_ip_vs_conn_sync};
pub use list::{daemons, list_all, list_one, save, timeouts};
pub use procfs::{PROC_HZ, proc_ip_vs, proc_ip_vs_stats};

/// Host and service name look-ups (`gethostbyaddr`, `getservbyport`).
pub trait Resolver {
    /// The host name of an address, or `None` to print it numerically.
    fn host(&self, addr: IpAddr) -> Option<String>;
    /// The service name of `port` for `proto` (`"tcp"`, `"udp"` or
    /// `"sctp"`), or `None` to print the number.
    fn service(&self, port: u16, proto: &str) -> Option<String>;
}

/// Never resolves anything: the `-n` forms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Numeric;

impl Resolver for Numeric {
    fn host(&self, _addr: IpAddr) -> Option<String> {
        None
    }

    fn service(&self, _port: u16, _proto: &str) -> Option<String> {
        None
    }
}

/// Resolves as ipvsadm does: reverse DNS (`/etc/hosts`, DNS, …) for hosts,
/// `/etc/services` for ports (see [`crate::names`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Resolver for System {
    fn host(&self, addr: IpAddr) -> Option<String> {
        crate::names::host_name(addr)
    }

    fn service(&self, port: u16, proto: &str) -> Option<String> {
        crate::names::name_by_port(port, proto).map(str::to_owned)
    }
}

/// Options of `-L` that change the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFlags {
    /// `-n`: no name look-ups (the resolver passed in is then not used).
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--nosort`: services and destinations in the order given (the
    /// daemon's, newest first).
    pub nosort: bool,
    /// `--exact` / `-X`: counters without K/M/G/T scaling.
    pub exact: bool,
}
