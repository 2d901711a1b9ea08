//! The kernel's `/proc/net/ip_vs` and `/proc/net/ip_vs_stats`
//! (`ip_vs_info_seq_show`, `ip_vs_stats_show` in Linux 6.6).

use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_proto::{Rates, SVC_F_ONEPACKET, SVC_F_PERSISTENT, ServiceId, ServiceInfo, Stats};

use super::common::{full6, ljust};

/// `HZ` of the kernel being imitated: `/proc/net/ip_vs` shows persistence
/// timeouts in jiffies (seconds × HZ). 250 is the common distribution
/// configuration (and what the reference examples use: 360 s ⇒ 90000).
pub const PROC_HZ: u32 = 250;

/// The kernel's `/proc/net/ip_vs`: header, then every service in the order
/// given (the kernel's is its hash-table order) with its destinations in
/// the order given (the kernel's list order, newest first).
///
/// All numbers are hexadecimal in host order; IPv6 addresses are written
/// in full (`%pI6`); the persistence timeout is in jiffies ([`PROC_HZ`]);
/// for IPv6 services the "netmask" is the prefix length byte-swapped
/// (`ntohl` of a host-order value on a little-endian machine: /128 ⇒
/// `80000000`).
pub fn proc_ip_vs(version: u32, conn_tab_size: u32, services: &[ServiceInfo]) -> String {
    let mut out = format!(
        "IP Virtual Server version {}.{}.{} (size={})\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n",
        (version >> 16) & 0xff,
        (version >> 8) & 0xff,
        version & 0xff,
        conn_tab_size as i32
    );
    for s in services {
        let spec = &s.spec;
        let sched = if spec.scheduler.is_empty() {
            "none"
        } else {
            spec.scheduler.as_str()
        };
        let ops = if spec.flags & SVC_F_ONEPACKET != 0 {
            "ops "
        } else {
            ""
        };
        match spec.id {
            ServiceId::Addr {
                proto,
                addr: IpAddr::V4(a),
                port,
            } => {
                let _ = write!(
                    out,
                    "{}  {:08X}:{:04X} {sched} {ops} ",
                    proto.name(),
                    u32::from(a),
                    port
                );
            }
            ServiceId::Addr {
                proto,
                addr: IpAddr::V6(a),
                port,
            } => {
                // No "ops " marker for IPv6 in the kernel's format.
                let _ = write!(
                    out,
                    "{}  [{}]:{:04X} {sched} ",
                    proto.name(),
                    full6(a),
                    port
                );
            }
            ServiceId::Fwmark { mark, .. } => {
                let _ = write!(out, "FWM  {mark:08X} {sched} {ops}");
            }
        }
        if spec.flags & SVC_F_PERSISTENT != 0 {
            let netmask = if spec.id.is_v6() {
                spec.netmask.swap_bytes()
            } else {
                spec.netmask
            };
            let _ = writeln!(
                out,
                "persistent {} {netmask:08X}",
                spec.timeout.wrapping_mul(PROC_HZ) as i32
            );
        } else {
            out.push('\n');
        }
        for d in &s.dests {
            match d.spec.addr {
                IpAddr::V4(a) => {
                    let _ = write!(out, "  -> {:08X}:{:04X}      ", u32::from(a), d.spec.port);
                }
                IpAddr::V6(a) => {
                    let _ = write!(out, "  -> [{}]:{:04X}      ", full6(a), d.spec.port);
                }
            }
            ljust(&mut out, d.spec.fwd.name(), 7);
            let _ = writeln!(
                out,
                " {:<6} {:<10} {:<10}",
                d.spec.weight as i32, d.active as i32, d.inactive as i32
            );
        }
    }
    out
}

/// The kernel's `/proc/net/ip_vs_stats`: global totals and rates, in
/// upper-case hexadecimal.
pub fn proc_ip_vs_stats(total: &Stats, rates: &Rates) -> String {
    format!(
        "   Total Incoming Outgoing         Incoming         Outgoing\n   \
         Conns  Packets  Packets            Bytes            Bytes\n\
         {:>8X} {:>8X} {:>8X} {:>16X} {:>16X}\n\n \
         Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n\
         {:>8X} {:>8X} {:>8X} {:>16X} {:>16X}\n",
        total.conns,
        total.inpkts,
        total.outpkts,
        total.inbytes,
        total.outbytes,
        rates.cps,
        rates.inpps,
        rates.outpps,
        rates.inbps,
        rates.outbps
    )
}
