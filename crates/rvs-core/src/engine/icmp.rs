//! ICMP errors about a connection (reference §5.4): translated back for
//! NAT, forwarded to the real server when they come from the client side.

use rvs_wire::FlowMeta;

use super::xmit::Target;
use super::{Action, DropReason, Engine, Frame};
use crate::service::ServiceRef;

impl Engine {
    /// ICMP errors that refer to a connection (reference §5.4): translated
    /// for NAT, forwarded to the real server for client-side errors.
    pub(super) fn process_icmp_error(&mut self, frame: Frame<'_>, meta: &FlowMeta) -> Action {
        let Some(icmp) = meta.icmp else {
            return Action::Pass;
        };
        // From the real-server side (the kernel's `inout = 1`): the quoted
        // packet is the request the server received (src = client, dst = server).
        if let Some(id) = self.conns.lookup_out(
            icmp.inner_proto,
            &icmp.inner_dst,
            icmp.inner_dport,
            &icmp.inner_src,
            icmp.inner_sport,
        ) {
            let Some(c) = self.conns.get(id) else {
                return Action::Drop(DropReason::Icmp);
            };
            let (sref, dest, vaddr, vport, caddr) = (
                ServiceRef::from_owner(c.owner),
                c.dest,
                c.vaddr,
                c.vport,
                c.caddr,
            );
            let (hop, src_mac) = match self.egress(caddr) {
                Ok(e) => e,
                Err(a) => return a,
            };
            self.count_out(sref, dest, meta.l3_len);
            let f = &mut frame.buf[frame.start..frame.start + frame.len];
            if rvs_wire::icmp_error_out(f, meta, vaddr, vport).is_err()
                || rvs_wire::set_macs(f, src_mac, hop.mac).is_err()
            {
                return Action::Drop(DropReason::Icmp);
            }
            return Action::Forward {
                port: hop.port,
                start: frame.start,
                len: frame.len,
            };
        }
        // From the client side: the quoted packet is one the director sent to
        // the client (src = virtual address, dst = client). It goes to the
        // real server like the connection's other packets.
        if let Some(id) = self.conns.lookup_in(
            icmp.inner_proto,
            &icmp.inner_dst,
            icmp.inner_dport,
            &icmp.inner_src,
            icmp.inner_sport,
        ) {
            let Some(c) = self.conns.get(id) else {
                return Action::Drop(DropReason::Icmp);
            };
            let target = Target::of(c);
            return self.forward_in(frame, meta, &target);
        }
        Action::Pass
    }
}
