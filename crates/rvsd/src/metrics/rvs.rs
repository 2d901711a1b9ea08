//! rvs's own series (`rvs_*`): data-plane workers, the engine's drops and
//! table, the classifier, the SYN guard, the fast path, the control plane.

use prometheus::proto::{Metric, MetricFamily, MetricType, Summary};

use super::{Snapshot, by_label, counter, family, gauge, labelled, one_counter, one_gauge};

/// rvs's own series.
pub(super) fn rvs_families(s: &Snapshot) -> Vec<MetricFamily> {
    let mut f = Vec::new();
    f.push(family(
        "rvs_dataplane_info",
        "The packet I/O in use (label mode: xdp, packet or none).",
        MetricType::GAUGE,
        vec![gauge(&[("mode", s.mode.clone())], 1.0)],
    ));
    f.push(one_gauge(
        "rvs_filter_in_step",
        "1 when the data plane's filter holds rvsd's table, 0 while it failed to take a \
         change (rvs dataplane says why).",
        if s.filter_out_of_step.is_some() {
            0.0
        } else {
            1.0
        },
    ));
    if !s.workers.is_empty() {
        let mut metrics = Vec::new();
        for w in &s.workers {
            let worker = w.worker.to_string();
            for (outcome, n) in [
                ("rx", w.rx),
                ("tx", w.tx),
                ("forwarded", w.forwarded),
                ("replies", w.replies),
                ("passed", w.passed),
                ("dropped", w.dropped),
                ("need_hop", w.need_hop),
                ("tx_full", w.tx_full),
                ("no_port", w.no_port),
                ("kernel_drop", w.kernel_drops),
                ("csum_fixed", w.csum_completed),
                ("tso_cut", w.segmented),
            ] {
                metrics.push(counter(
                    &[("worker", worker.clone()), ("outcome", outcome.to_string())],
                    n,
                ));
            }
        }
        f.push(family(
            "rvs_worker_frames_total",
            "Frames of each data-plane worker by outcome (as the columns of rvs dataplane).",
            MetricType::COUNTER,
            metrics,
        ));
    }
    if let Some(e) = &s.engine {
        f.push(one_gauge(
            "rvs_conns",
            "Connection entries in the table now (templates included).",
            e.conns as f64,
        ));
        f.push(one_gauge(
            "rvs_conns_max",
            "The connection table's bound (rvsd --max-conns).",
            e.max_conns as f64,
        ));
        f.push(one_counter(
            "rvs_conns_table_full_total",
            "New connections that found the table at 15/16 of its bound.",
            e.table_full,
        ));
        f.push(one_counter(
            "rvs_conns_evicted_syn_recv_total",
            "SYN_RECV entries evicted to make room near the bound.",
            e.evicted_syn_recv,
        ));
        f.push(one_gauge(
            "rvs_next_hops",
            "Next hops the engine holds now.",
            e.hops as f64,
        ));
        f.push(one_counter(
            "rvs_next_hops_pruned_total",
            "Next hops pruned (addresses nothing needed any more).",
            e.hops_pruned,
        ));
        f.push(by_label(
            "rvs_engine_drops_total",
            "Frames the engine dropped, by reason.",
            "reason",
            &[
                ("table_full", e.drop_table_full),
                ("no_connection", e.drop_no_conn),
                ("no_real_server", e.drop_no_dest),
                ("real_server_gone", e.drop_dest_gone),
                ("ttl", e.drop_ttl),
                ("rewrite_failed", e.drop_rewrite),
                ("malformed", e.drop_malformed),
                ("other", e.drop_other),
            ],
        ));
    }
    {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &crate::syncd::STATS;
        f.push(by_label(
            "rvs_sync_messages_total",
            "Connection-sync messages, by what happened to them.",
            "outcome",
            &[
                ("sent", st.sent_msgs.load(Relaxed)),
                ("send_failed", st.send_errors.load(Relaxed)),
                ("received", st.recv_msgs.load(Relaxed)),
                ("dropped", st.recv_dropped.load(Relaxed)),
            ],
        ));
        f.push(by_label(
            "rvs_sync_entries_total",
            "Connection-sync entries sent by the master or refused by the backup's decoder.",
            "outcome",
            &[
                ("sent", st.sent_conns.load(Relaxed)),
                ("undecodable", st.recv_bad_entries.load(Relaxed)),
            ],
        ));
    }
    if let Some(c) = &s.classifier {
        f.push(by_label(
            "rvs_classifier_frames_total",
            "Frames the XDP classifier saw, by verdict.",
            "verdict",
            &[
                ("redirected", c.redirected),
                ("passed", c.passed),
                ("no_socket", c.no_socket),
                ("malformed", c.malformed),
                ("fragment_passed", c.fragments),
                ("fragment_claimed", c.fragments_claimed),
            ],
        ));
        f.push(one_counter(
            "rvs_syn_guard_syns_total",
            "Pure TCP SYNs among the frames the classifier claimed.",
            c.syns,
        ));
        f.push(one_counter(
            "rvs_syn_guard_shed_total",
            "Pure SYNs the SYN guard shed while the slow path was congested.",
            c.syn_shed,
        ));
        f.push(one_gauge(
            "rvs_syn_guard_shed_ratio",
            "The share of pure SYNs the SYN guard sheds now (0 to 1).",
            f64::from(c.syn_shed_permille) / 1000.0,
        ));
    }
    if let Some(p) = &s.fast_path {
        f.push(one_gauge(
            "rvs_fastpath_entries",
            "Flow entries in the XDP fast path's cache now.",
            p.entries as f64,
        ));
        f.push(by_label(
            "rvs_fastpath_events_total",
            "The XDP fast path's events, by kind.",
            "event",
            &[
                ("hit", p.hits),
                ("miss", p.misses),
                ("skipped", p.skipped),
                ("too_big", p.too_big),
                ("ttl", p.ttl),
                ("error", p.errors),
                ("install", p.installs),
                ("removal", p.removals),
                ("eviction", p.evictions),
                ("csum_fixed", p.csum_completed),
            ],
        ));
    }
    if !s.requests.is_empty() {
        let metrics = s
            .requests
            .iter()
            .map(|(kind, (n, secs))| {
                let mut m = Metric::default();
                let mut sm = Summary::default();
                sm.set_sample_count(*n);
                sm.set_sample_sum(*secs);
                m.set_summary(sm);
                m.set_label(labelled(&[("request", kind.to_string())]));
                m
            })
            .collect();
        f.push(family(
            "rvs_control_request_seconds",
            "Control requests (rvsadm, rvs) handled, by kind, and the time spent on them.",
            MetricType::SUMMARY,
            metrics,
        ));
    }
    f
}
