// SPDX-License-Identifier: GPL-2.0-or-later
//! `ha_suspend`: a virtual server's checkers pause while none of its
//! addresses is an address of this host, as keepalived's
//! (`update_checker_activity`): on a VRRP backup the VIP is not here, and
//! its checks would only repeat the master's. A paused checker keeps its
//! state (and its real servers stay as they are in the table) and runs
//! again when an address comes back.
//!
//! keepalived follows the addresses through netlink events, and so does
//! rvs while some virtual server has `ha_suspend`: each address event
//! (`addr_watch.rs`) makes the scheduler read them again (getifaddrs), so
//! a change is seen at once; where the netlink socket cannot be opened
//! they are read once a second (logged). The decisions are pure
//! functions of the configuration and the addresses ([`suspended`],
//! [`changes`]).

use std::net::IpAddr;

use crate::keepalived::apply;
use crate::keepalived::conf::{Config, GroupMember, VirtualServer, VsAddr};

/// The addresses of `vs`: its own, or its group's.
fn addrs(vs: &VirtualServer) -> Vec<IpAddr> {
    match &vs.addr {
        VsAddr::Addr(a, _) => vec![*a],
        VsAddr::Group(_, m) => m
            .iter()
            .filter_map(|g| match g {
                GroupMember::Addr(a, _) => Some(*a),
                GroupMember::Fwmark(_) => None,
            })
            .collect(),
        VsAddr::Fwmark(_) => Vec::new(),
    }
}

/// Per virtual server of `conf`: whether its checkers are paused, the
/// host's addresses being `local`.
pub(super) fn suspended(conf: &Config, local: &[IpAddr]) -> Vec<bool> {
    conf.services
        .iter()
        .map(|vs| vs.ha_suspend && !addrs(vs).iter().any(|a| local.contains(a)))
        .collect()
}

/// Whether any virtual server of `conf` has `ha_suspend`.
pub(super) fn used(conf: &Config) -> bool {
    conf.services.iter().any(|vs| vs.ha_suspend)
}

/// keepalived's lines for the change from `before` to `after` (`None`:
/// the start, where only the paused ones are said): one per real server
/// with checkers of each virtual server that changed.
pub(super) fn changes(conf: &Config, before: Option<&[bool]>, after: &[bool]) -> Vec<String> {
    let mut out = Vec::new();
    for (vi, vs) in conf.services.iter().enumerate() {
        let now = after[vi];
        let (verb, changed) = match before {
            None => ("Deactivating", now),
            Some(b) => (if now { "Suspending" } else { "Activating" }, b[vi] != now),
        };
        if !changed {
            continue;
        }
        let Some(id) = apply::first_service_id(vs) else {
            continue;
        };
        let v = apply::fmt_vs(vs);
        for rs in vs.reals.iter().filter(|r| !r.checkers.is_empty()) {
            out.push(format!(
                "{verb} healthchecker for service {} for VS {v}",
                apply::fmt_real(&id, rs),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::conf;

    fn parse(text: &str) -> Config {
        let mut w = Vec::new();
        let t = crate::keepalived::lex::parse_text(
            text,
            "k.conf",
            std::path::Path::new("/nonexistent"),
            &mut w,
        )
        .unwrap();
        conf::build(&t, &mut w).unwrap()
    }

    #[test]
    fn paused_while_no_address_of_the_service_is_here() {
        let c = parse(
            "virtual_server 10.0.0.1 80 {\n ha_suspend\n real_server 10.0.1.1 80 {\n  TCP_CHECK {}\n }\n \
             real_server 10.0.1.2 80 {\n }\n}\n\
             virtual_server 10.0.0.2 80 {\n real_server 10.0.1.1 80 {\n  TCP_CHECK {}\n }\n}\n\
             virtual_server_group G {\n 10.0.0.3 80\n 10.0.0.4 80\n}\n\
             virtual_server group G {\n ha_suspend\n real_server 10.0.1.3 80 {\n  TCP_CHECK {}\n }\n}\n",
        );
        assert!(used(&c));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Neither VIP here: the ha_suspend ones pause, the other runs.
        let none = suspended(&c, &[ip("127.0.0.1")]);
        assert_eq!(none, [true, false, true]);
        assert_eq!(
            changes(&c, None, &none),
            [
                "Deactivating healthchecker for service [10.0.1.1]:tcp:80 for VS [10.0.0.1]:tcp:80",
                "Deactivating healthchecker for service [10.0.1.3]:tcp:80 for VS [G]:0",
            ]
        );
        // One address of the group is enough.
        let some = suspended(&c, &[ip("10.0.0.1"), ip("10.0.0.4")]);
        assert_eq!(some, [false, false, false]);
        assert_eq!(
            changes(&c, Some(&none), &some),
            [
                "Activating healthchecker for service [10.0.1.1]:tcp:80 for VS [10.0.0.1]:tcp:80",
                "Activating healthchecker for service [10.0.1.3]:tcp:80 for VS [G]:0",
            ]
        );
        let back = suspended(&c, &[ip("10.0.0.4")]);
        assert_eq!(
            changes(&c, Some(&some), &back),
            ["Suspending healthchecker for service [10.0.1.1]:tcp:80 for VS [10.0.0.1]:tcp:80"]
        );
        assert!(changes(&c, Some(&back), &back).is_empty());
        assert!(!used(&parse("virtual_server 10.0.0.2 80 {\n}\n")));
    }
}
