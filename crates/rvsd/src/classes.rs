//! What the packet filters in front of rvsd must claim, derived from the
//! engine's table: the XDP classifier's maps (`--io xdp`) and the nftables
//! drop rules of `--io packet` are both filled from one [`ClassSet`].

use std::net::IpAddr;

use rvs_core::fwmark::FwmarkRule;
use rvs_core::service::ServiceKey;
use rvs_core::{Engine, FwdMethod};
use rvs_io::xdp::ClassKey;

/// Everything rvsd claims, plus the real servers to resolve ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassSet {
    /// (proto, VIP, port) of every address service; port 0 = every port.
    pub services: Vec<ClassKey>,
    /// (proto, real server, port) of every NAT real server (their replies).
    pub nat: Vec<ClassKey>,
    /// Fwmark rules whose mark has a fwmark service, in rule order.
    pub fwmark: Vec<FwmarkRule>,
    /// Addresses of every real server (resolved before their first packet).
    pub dests: Vec<IpAddr>,
}

/// The class set of `engine`'s table.
pub fn class_set(engine: &Engine) -> ClassSet {
    let mut services = Vec::new();
    let mut nat = Vec::new();
    let mut dests = Vec::new();
    for (_, svc) in engine.services().iter() {
        for d in &svc.dests {
            dests.push(d.addr);
        }
        // Fwmark services are claimed through `fwmark` rules (filled by
        // the fwmark work).
        let ServiceKey::Addr { proto, addr, port } = svc.key else {
            continue;
        };
        let proto = proto.number();
        services.push(ClassKey { proto, addr, port });
        for d in &svc.dests {
            if d.fwd == FwdMethod::Masq {
                nat.push(ClassKey {
                    proto,
                    addr: d.addr,
                    port: d.port,
                });
            }
        }
    }
    services.sort_unstable_by_key(|k| (k.proto, k.addr, k.port));
    services.dedup();
    nat.sort_unstable_by_key(|k| (k.proto, k.addr, k.port));
    nat.dedup();
    dests.sort_unstable();
    dests.dedup();
    ClassSet {
        services,
        nat,
        fwmark: Vec::new(),
        dests,
    }
}
