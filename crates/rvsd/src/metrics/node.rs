//! node_exporter's ipvs collector series (`node_ipvs_*`): the totals and
//! the per-real-server gauges with their labels (see the compatibility
//! notes in the [parent module](super)).

use std::collections::BTreeMap;
use std::net::IpAddr;

use prometheus::proto::{MetricFamily, MetricType};
use rvs_proto::{Proto, ServiceId, ServiceInfo};

use super::rvs::rvs_families;
use super::{BackendLabels, Snapshot, family, gauge, one_counter};

/// An address as Go's `net.IP.String()` prints it.
fn go_ip(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The kept label values of each real server of `services`, with its
/// (active, inactive, weight), summed over equal label values, in label
/// order.
fn backends(services: &[ServiceInfo], labels: &BackendLabels) -> Vec<(Vec<String>, [u64; 3])> {
    let mut sums: BTreeMap<Vec<String>, [u64; 3]> = BTreeMap::new();
    for s in services {
        let (local_address, local_port, proto, mark) = match &s.spec.id {
            ServiceId::Addr { proto, addr, port } => {
                let p = match proto {
                    Proto::Tcp => "TCP",
                    Proto::Udp => "UDP",
                    Proto::Sctp => "SCTP",
                };
                (go_ip(*addr), port.to_string(), p, String::new())
            }
            ServiceId::Fwmark { mark, .. } => {
                (String::new(), "0".to_string(), "FWM", format!("{mark:08X}"))
            }
        };
        for d in &s.dests {
            let values: Vec<String> = labels
                .0
                .iter()
                .map(|l| match *l {
                    "local_address" => local_address.clone(),
                    "local_port" => local_port.clone(),
                    "remote_address" => go_ip(d.spec.addr),
                    "remote_port" => d.spec.port.to_string(),
                    "proto" => proto.to_string(),
                    _ => mark.clone(),
                })
                .collect();
            let sum = sums.entry(values).or_default();
            sum[0] += u64::from(d.active);
            sum[1] += u64::from(d.inactive);
            sum[2] += u64::from(d.spec.weight);
        }
    }
    sums.into_iter().collect()
}

/// Every family of a scrape.
pub fn families(s: &Snapshot, labels: &BackendLabels) -> Vec<MetricFamily> {
    let t = &s.total;
    let mut f: Vec<MetricFamily> = [
        (
            "connections_total",
            "The total number of connections made.",
            t.conns,
        ),
        (
            "incoming_packets_total",
            "The total number of incoming packets.",
            t.inpkts,
        ),
        (
            "outgoing_packets_total",
            "The total number of outgoing packets.",
            t.outpkts,
        ),
        (
            "incoming_bytes_total",
            "The total amount of incoming data.",
            t.inbytes,
        ),
        (
            "outgoing_bytes_total",
            "The total amount of outgoing data.",
            t.outbytes,
        ),
    ]
    .into_iter()
    .map(|(name, help, v)| one_counter(&format!("node_ipvs_{name}"), help, v))
    .collect();
    let backs = backends(&s.services, labels);
    if !backs.is_empty() {
        for (i, (name, help)) in [
            (
                "backend_connections_active",
                "The current active connections by local and remote address.",
            ),
            (
                "backend_connections_inactive",
                "The current inactive connections by local and remote address.",
            ),
            (
                "backend_weight",
                "The current backend weight by local and remote address.",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let series = backs
                .iter()
                .map(|(values, sums)| {
                    let l: Vec<(&str, String)> = labels
                        .0
                        .iter()
                        .copied()
                        .zip(values.iter().cloned())
                        .collect();
                    gauge(&l, sums[i] as f64)
                })
                .collect();
            f.push(family(
                &format!("node_ipvs_{name}"),
                help,
                MetricType::GAUGE,
                series,
            ));
        }
    }
    f.extend(rvs_families(s));
    f
}
