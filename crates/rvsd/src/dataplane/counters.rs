//! The counters of a worker: shared (atomics, read by `rvs dataplane`)
//! and local to a batch.

use std::sync::atomic::{AtomicU64, Ordering};

use rvs_proto::DataPlaneWorker;

/// Counters of one worker, readable while it runs.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Turns of the worker's loop (it turns at least every poll timeout,
    /// traffic or not): the systemd watchdog's sign of progress.
    pub heartbeat: AtomicU64,
    /// Frames received.
    pub rx: AtomicU64,
    /// Frames queued for transmission.
    pub tx: AtomicU64,
    /// [`Action::Forward`](rvs_core::Action::Forward)s.
    pub forwarded: AtomicU64,
    /// [`Action::Reply`](rvs_core::Action::Reply)s.
    pub replies: AtomicU64,
    /// [`Action::Pass`](rvs_core::Action::Pass)es (dropped with AF_XDP, left to the kernel with
    /// AF_PACKET).
    pub passed: AtomicU64,
    /// [`Action::Drop`](rvs_core::Action::Drop)s.
    pub dropped: AtomicU64,
    /// [`Action::NeedHop`](rvs_core::Action::NeedHop)s (the frame is held while the hop resolves,
    /// see [`crate::held`]).
    pub need_hop: AtomicU64,
    /// Copies the egress socket had no room for.
    pub tx_full: AtomicU64,
    /// Frames for an interface rvsd does not serve.
    pub no_port: AtomicU64,
    /// Frames whose partial checksum (a sender's checksum offload) the
    /// engine finished.
    pub csum_completed: AtomicU64,
    /// TCP super-frames (a sender's TSO, GRO) cut into segments before
    /// the engine saw them (AF_PACKET only).
    pub segmented: AtomicU64,
    /// Frames handed to the worker whose engine replica owns them.
    pub handed_off: AtomicU64,
    /// Frames not handed over: the owner's queue was full.
    pub handoff_dropped: AtomicU64,
    /// Frames the kernel dropped before the worker read them (the sum over
    /// the worker's sockets, refreshed every [`KERNEL_STATS_INTERVAL`](super::worker::KERNEL_STATS_INTERVAL)).
    pub kernel_drops: AtomicU64,
}

/// The same counters, counted locally during a batch.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    pub(super) rx: u64,
    pub(super) tx: u64,
    pub(super) forwarded: u64,
    pub(super) replies: u64,
    pub(super) passed: u64,
    pub(super) dropped: u64,
    pub(super) need_hop: u64,
    pub(super) tx_full: u64,
    pub(super) no_port: u64,
    pub(super) csum_completed: u64,
    pub(super) segmented: u64,
    pub(super) handed_off: u64,
    pub(super) handoff_dropped: u64,
}

impl WorkerCounters {
    pub(super) fn add(&self, t: &Tally) {
        let r = Ordering::Relaxed;
        self.rx.fetch_add(t.rx, r);
        self.tx.fetch_add(t.tx, r);
        self.forwarded.fetch_add(t.forwarded, r);
        self.replies.fetch_add(t.replies, r);
        self.passed.fetch_add(t.passed, r);
        self.dropped.fetch_add(t.dropped, r);
        self.need_hop.fetch_add(t.need_hop, r);
        self.tx_full.fetch_add(t.tx_full, r);
        self.no_port.fetch_add(t.no_port, r);
        self.csum_completed.fetch_add(t.csum_completed, r);
        self.segmented.fetch_add(t.segmented, r);
        self.handed_off.fetch_add(t.handed_off, r);
        self.handoff_dropped.fetch_add(t.handoff_dropped, r);
    }

    pub(super) fn snapshot(&self, worker: u32) -> DataPlaneWorker {
        let r = Ordering::Relaxed;
        DataPlaneWorker {
            worker,
            rx: self.rx.load(r),
            tx: self.tx.load(r),
            forwarded: self.forwarded.load(r),
            replies: self.replies.load(r),
            passed: self.passed.load(r),
            dropped: self.dropped.load(r),
            need_hop: self.need_hop.load(r),
            tx_full: self.tx_full.load(r),
            no_port: self.no_port.load(r),
            kernel_drops: self.kernel_drops.load(r),
            csum_completed: self.csum_completed.load(r),
            segmented: self.segmented.load(r),
            handed_off: self.handed_off.load(r),
            handoff_dropped: self.handoff_dropped.load(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let c = WorkerCounters::default();
        let t = Tally {
            rx: 3,
            tx: 2,
            forwarded: 2,
            replies: 1,
            passed: 1,
            dropped: 4,
            need_hop: 5,
            tx_full: 6,
            no_port: 7,
            csum_completed: 8,
            segmented: 9,
            handed_off: 10,
            handoff_dropped: 11,
        };
        c.add(&t);
        c.add(&t);
        let s = c.snapshot(1);
        assert_eq!(
            s,
            DataPlaneWorker {
                worker: 1,
                rx: 6,
                tx: 4,
                forwarded: 4,
                replies: 2,
                passed: 2,
                dropped: 8,
                need_hop: 10,
                tx_full: 12,
                no_port: 14,
                kernel_drops: 0,
                csum_completed: 16,
                segmented: 18,
                handed_off: 20,
                handoff_dropped: 22,
            }
        );
    }
}
