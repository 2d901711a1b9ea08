//! The XDP fast path's bookkeeping: which connections have cached flows,
//! the [`FastPathOp`]s queued for the data plane, and the crediting of
//! what the fast path forwarded ([`Engine::credit_fast_path`]).

use hashbrown::HashMap;

use super::Engine;
use crate::conn::{self, Conn, ConnId};
use crate::fastpath::{self, FastFlow, FastPathOp, FlowKey};
use crate::service::ServiceRef;
use crate::time::Instant;

/// What the engine knows of the fast path's cache.
#[derive(Debug, Default)]
pub(super) struct FastPath {
    /// Connections with cached flows, by their client → server key: the
    /// handle and which directions ([`FP_IN`], [`FP_OUT`]) are cached.
    pub(super) installed: HashMap<FlowKey, (ConnId, u8)>,
    /// Work for the data plane.
    pub(super) ops: Vec<FastPathOp>,
}

/// The client → server flow is cached.
pub(super) const FP_IN: u8 = 1;
/// The NAT reply flow is cached.
pub(super) const FP_OUT: u8 = 2;

impl Engine {
    /// Turn the fast-path bookkeeping on or off (off by default). When on,
    /// the engine queues [`FastPathOp`]s: flows to cache once they are
    /// eligible ([`fastpath::eligibility`]) and forwarded, and flows to
    /// forget when their connection leaves the table or stops being
    /// eligible, or when a change (real server deleted or edited, service
    /// edited, next hop, port or sysctls changed, `-C`) could alter the
    /// decision. Turning it off forgets everything (queue a
    /// [`FastPathOp::RemoveAll`] yourself if the cache is not empty).
    pub fn set_fast_path(&mut self, on: bool) {
        match (on, self.fast.is_some()) {
            (true, false) => self.fast = Some(Box::default()),
            (false, true) => self.fast = None,
            _ => {}
        }
    }

    /// Whether the fast-path bookkeeping is on.
    pub fn fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether fast-path work is queued (see [`Engine::take_fast_path_ops`]).
    pub fn has_fast_path_ops(&self) -> bool {
        self.fast.as_ref().is_some_and(|fp| !fp.ops.is_empty())
    }

    /// Move the queued fast-path work to `out`, in order.
    pub fn take_fast_path_ops(&mut self, out: &mut Vec<FastPathOp>) {
        if let Some(fp) = self.fast.as_mut() {
            out.append(&mut fp.ops);
        }
    }

    /// Forget every cached flow (queue their removal): the next packet of
    /// each goes through the engine, which caches it again if it is still
    /// eligible. For the data plane, when what it can cache changed (an
    /// egress that now takes redirected frames).
    pub fn fast_path_forget_all(&mut self) {
        self.fast_path_invalidate(|_| true);
    }

    /// Number of connections with cached flows.
    pub fn fast_path_flows(&self) -> usize {
        self.fast.as_ref().map_or(0, |fp| fp.installed.len())
    }

    /// Credit `packets` and `bytes` (IP lengths) the fast path forwarded on
    /// `flow` to its service, real server and the totals, as the slow path
    /// would have counted them; when the connection is still the one the
    /// entry was made for, count the packets on it and re-arm its timer
    /// from `last_seen` (the last packet's time) if that is later than what
    /// the engine saw.
    pub fn credit_fast_path(
        &mut self,
        flow: &FastFlow,
        packets: u64,
        bytes: u64,
        last_seen: Option<Instant>,
    ) {
        if packets == 0 && bytes == 0 {
            return;
        }
        let sref = ServiceRef::from_owner(flow.owner);
        if let Some(svc) = self.services.get_mut(sref) {
            if flow.reply {
                svc.stats.count_out_many(packets, bytes);
            } else {
                svc.stats.count_in_many(packets, bytes);
            }
            if let Some(d) = svc.dest_by_id_mut(flow.dest) {
                if flow.reply {
                    d.stats.count_out_many(packets, bytes);
                } else {
                    d.stats.count_in_many(packets, bytes);
                }
            }
        }
        if flow.reply {
            self.stats.count_out_many(packets, bytes);
        } else {
            self.stats.count_in_many(packets, bytes);
        }
        let Some(c) = self.conns.get(flow.conn) else {
            return;
        };
        if !fastpath::matches(&flow.key, c) || c.owner != flow.owner {
            return;
        }
        let (timeout, expires) = (c.timeout_ms, c.expires);
        if !flow.reply {
            let old = self.conns.get_mut(flow.conn).map(|mut m| {
                let old = m.in_pkts;
                m.in_pkts = m.in_pkts.wrapping_add(packets as u32);
                old
            });
            if let Some(old) = old {
                let at = last_seen.unwrap_or(expires);
                self.sync_credited(flow.conn, old, packets as u32, at);
            }
        }
        if let Some(seen) = last_seen
            && seen.as_millis() + u64::from(timeout) > expires.as_millis()
        {
            self.conns.refresh(flow.conn, seen);
        }
    }

    /// After a forwarded packet of `id`: cache its flows if it is eligible
    /// and they are not cached yet, forget them if it no longer is.
    pub(super) fn fast_path_update(&mut self, id: ConnId) {
        let Some(fp) = self.fast.as_deref() else {
            return;
        };
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let key = fastpath::flow_in(c);
        let have = match fp.installed.get(&key) {
            Some(&(i, bits)) if i == id => bits,
            _ => 0,
        };
        let nat = c.fwd() == conn::flags::MASQ;
        if fastpath::eligibility(c).is_err() {
            if have != 0 {
                self.fast_path_forget(key);
            }
            return;
        }
        if have & FP_IN != 0 && (!nat || have & FP_OUT != 0) {
            return;
        }
        let flow = |key: FlowKey, reply: bool| fast_flow(id, c, key, reply);
        let mut bits = have;
        let mut new = [None, None];
        if have & FP_IN == 0
            && let Ok((hop, port)) = self.egress_port(c.daddr)
            && let Some(a) = fastpath::action_in(c, id, &hop, &port)
        {
            new[0] = Some(FastPathOp::Install(flow(key, false), a));
            bits |= FP_IN;
        }
        if nat
            && have & FP_OUT == 0
            && let Some(out) = fastpath::flow_out(c)
            && let Ok((hop, port)) = self.egress_port(c.caddr)
            && let Some(a) = fastpath::action_out(c, id, &hop, &port)
        {
            new[1] = Some(FastPathOp::Install(flow(out, true), a));
            bits |= FP_OUT;
        }
        if bits == have {
            return;
        }
        if let Some(fp) = self.fast.as_deref_mut() {
            fp.ops.extend(new.into_iter().flatten());
            fp.installed.insert(key, (id, bits));
        }
    }

    /// Forget the cached flows of the connection whose client → server key
    /// is `key` (queue their removal).
    pub(super) fn fast_path_forget(&mut self, key: FlowKey) {
        let Some(fp) = self.fast.as_deref_mut() else {
            return;
        };
        let Some((id, bits)) = fp.installed.remove(&key) else {
            return;
        };
        let Some(c) = self.conns.get(id) else {
            return;
        };
        queue_removals(&mut fp.ops, id, bits, c, key);
    }

    /// A connection that leaves the table: queue the removal of its cached
    /// flows (`c` is no longer in the table).
    pub(super) fn fast_path_gone(&mut self, c: &Conn) {
        let Some(fp) = self.fast.as_deref_mut() else {
            return;
        };
        if c.is_template() {
            return;
        }
        let key = fastpath::flow_in(c);
        let Some((id, bits)) = fp.installed.remove(&key) else {
            return;
        };
        queue_removals(&mut fp.ops, id, bits, c, key);
    }

    /// Forget the cached flows of every connection `pred` selects; their
    /// next packets go through the engine, which caches them again if they
    /// are still eligible (with the decision as it now stands).
    pub(super) fn fast_path_invalidate(&mut self, mut pred: impl FnMut(&Conn) -> bool) {
        let Some(fp) = self.fast.as_deref() else {
            return;
        };
        let keys: Vec<FlowKey> = fp
            .installed
            .iter()
            .filter(|(_, (id, _))| self.conns.get(*id).is_some_and(&mut pred))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.fast_path_forget(k);
        }
    }
}

/// The fast-path flow `key` of connection `id` (`c`); `reply`: the NAT
/// reply direction.
pub(super) fn fast_flow(id: ConnId, c: &Conn, key: FlowKey, reply: bool) -> FastFlow {
    FastFlow {
        key,
        conn: id,
        owner: c.owner,
        dest: c.dest,
        reply,
    }
}

/// Queue the removal of the cached flows of connection `id` (`c`): the
/// client → server flow `key` and, for NAT, the reply flow, as `bits` says
/// they were installed.
pub(super) fn queue_removals(
    ops: &mut Vec<FastPathOp>,
    id: ConnId,
    bits: u8,
    c: &Conn,
    key: FlowKey,
) {
    let flow = |key: FlowKey, reply: bool| fast_flow(id, c, key, reply);
    if bits & FP_IN != 0 {
        ops.push(FastPathOp::Remove(flow(key, false)));
    }
    if bits & FP_OUT != 0
        && let Some(out) = fastpath::flow_out(c)
    {
        ops.push(FastPathOp::Remove(flow(out, true)));
    }
}
