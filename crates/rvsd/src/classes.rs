//! What the packet filters in front of rvsd must claim: the engine's
//! [`Claims`](rvs_core::claims::Claims) (derived in rvs-core, where the
//! engine also checks them against the filter's capacity before it accepts
//! a change) in the key type of the XDP classifier's maps. The XDP
//! classifier's maps (`--io xdp`) and the nftables drop rules of
//! `--io packet` are both filled from one [`ClassSet`].

use std::net::IpAddr;
use std::sync::Arc;

use rvs_core::Engine;
use rvs_core::claims::{ClaimCheck, ClaimKey, Claims, TableView, claims};
use rvs_core::fwmark::FwmarkRule;
use rvs_io::nft::FwmarkMatch;
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

fn class_key(k: &ClaimKey) -> ClassKey {
    ClassKey {
        proto: k.proto,
        addr: k.addr,
        port: k.port,
    }
}

impl From<Claims> for ClassSet {
    fn from(c: Claims) -> ClassSet {
        ClassSet {
            services: c.services.iter().map(class_key).collect(),
            nat: c.nat.iter().map(class_key).collect(),
            fwmark: c.fwmark,
            dests: c.dests,
        }
    }
}

/// The class set of `engine`'s table.
pub fn class_set(engine: &Engine) -> ClassSet {
    claims(&TableView::of(engine)).into()
}

/// The fwmark rules of `rules` as the filters take them.
pub fn fwmark_matches(rules: &[FwmarkRule]) -> Vec<FwmarkMatch> {
    rules
        .iter()
        .map(|r| FwmarkMatch {
            addr: r.addr,
            prefix_len: r.prefix_len,
            proto: r.proto.map(|p| p.number()),
            dports: r.dports.clone(),
            iif: r.iif,
        })
        .collect()
}

/// The XDP classifier's capacity as a claim check for the engine
/// ([`Engine::set_claim_check`]): a change whose claims its maps cannot
/// hold is refused (ENOMEM, "Memory allocation problem" in rvsadm, with
/// this reason) before anything changes.
pub fn xdp_claim_check() -> Arc<ClaimCheck> {
    Arc::new(|c: &Claims| {
        let services: Vec<ClassKey> = c.services.iter().map(class_key).collect();
        let nat: Vec<ClassKey> = c.nat.iter().map(class_key).collect();
        rvs_io::xdp::check_capacity(&services, &nat, &fwmark_matches(&c.fwmark))
            .map_err(|e| format!("the XDP classifier cannot hold the table this change makes: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::service::{CtlError, ServiceConfig, ServiceKey};
    use rvs_core::{Af, EngineConfig, Protocol};

    fn tcp(n: u32) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: IpAddr::V4((0x0a00_0000 + n).into()),
            port: 80,
        }
    }

    #[test]
    fn the_xdp_check_refuses_the_service_past_the_map() {
        let mut e = Engine::new(EngineConfig::default());
        e.set_claim_check(xdp_claim_check()).unwrap();
        let cfg = ServiceConfig::new(Af::Inet);
        let ops: Vec<_> = (0..rvs_io::xdp::MAX_SERVICES as u32)
            .map(|n| rvs_core::batch::ConfigOp::AddService(tcp(n), cfg.clone()))
            .collect();
        e.apply_batch(&ops, rvs_core::Instant::ZERO).unwrap();
        let next = rvs_core::batch::ConfigOp::AddService(tcp(1 << 20), cfg.clone());
        let err = e.apply(&next, rvs_core::Instant::ZERO).unwrap_err();
        assert!(matches!(err, CtlError::NoRoom(_)), "{err:?}");
        assert_eq!(err.errno(), 12);
        assert!(err.to_string().contains("capacity 16384"), "{err}");
        assert_eq!(e.services().len(), rvs_io::xdp::MAX_SERVICES);
        // A batch that removes one and adds one fits.
        let swap = [
            rvs_core::batch::ConfigOp::DeleteService(tcp(0)),
            next.clone(),
        ];
        e.apply_batch(&swap, rvs_core::Instant::ZERO).unwrap();
        // A batch that adds two after that does not, and changes nothing.
        let two = [
            rvs_core::batch::ConfigOp::DeleteService(tcp(1)),
            rvs_core::batch::ConfigOp::AddService(tcp(2 << 20), cfg.clone()),
            rvs_core::batch::ConfigOp::AddService(tcp(3 << 20), cfg),
        ];
        let (at, err) = e.apply_batch(&two, rvs_core::Instant::ZERO).unwrap_err();
        assert_eq!(at, 2);
        assert!(matches!(err, CtlError::NoRoom(_)));
        assert!(e.services().find(&tcp(1)).is_some(), "nothing half-applied");
    }

    #[test]
    fn a_table_too_big_is_refused_at_install() {
        let mut e = Engine::new(EngineConfig::default());
        let cfg = ServiceConfig::new(Af::Inet);
        for n in 0..=rvs_io::xdp::MAX_SERVICES as u32 {
            e.add_service(tcp(n), cfg.clone()).unwrap();
        }
        let err = e.set_claim_check(xdp_claim_check()).unwrap_err();
        assert!(err.contains("16385 entries"), "{err}");
        assert!(e.claim_guard().is_none());
    }
}
