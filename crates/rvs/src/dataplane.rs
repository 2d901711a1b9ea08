//! `rvs dataplane`: the live counters of rvsd's packet path, per worker
//! thread, the XDP classifier's and the XDP fast path's.

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{
    ClassifierCounters, DataPlaneWorker, EngineCounters, FastPathCounters, Reply, Request,
};

/// Ask the rvsd of `RVS_SOCKET` (or the default endpoint) and format the table.
pub fn run() -> Result<String, String> {
    let ep = Endpoint::from_env();
    let mut c = Client::connect(&ep)
        .map_err(|e| format!("no rvsd answers on {ep} ({e}); start it with `rvsd &`"))?;
    match c.call(Request::DataPlaneStats)? {
        Reply::DataPlaneStats {
            mode,
            workers,
            classifier,
            fast_path,
            engine,
            filter_out_of_step,
            io_why,
        } => {
            let mut out = format(&mode, &workers, classifier.as_ref(), fast_path.as_ref());
            if let Some(why) = &io_why {
                // Second line: under "packet I/O: MODE".
                let at = out.find('\n').map_or(out.len(), |i| i + 1);
                out.insert_str(at, &format!("why: {why}\n"));
            }
            if let Some(why) = &filter_out_of_step {
                out.push_str(&format!(
                    "filter: OUT OF STEP with rvsd's table (retrying): {why}\n"
                ));
            }
            if let Some(e) = &engine {
                out.push_str(&format_engine(e));
            }
            Ok(out)
        }
        Reply::Error(e) => Err(format!("rvsd: {} (errno {})", e.message, e.errno)),
        _ => Err("unexpected reply from rvsd".into()),
    }
}

/// The table: one row per worker and a total, then the classifier's
/// counters, then the fast path's (when it is on).
pub fn format(
    mode: &str,
    workers: &[DataPlaneWorker],
    classifier: Option<&ClassifierCounters>,
    fast_path: Option<&FastPathCounters>,
) -> String {
    let mut out = format!("packet I/O: {mode}\n");
    if workers.is_empty() {
        out.push_str("no data-plane worker (rvsd --io none forwards nothing)\n");
        return out;
    }
    let head = [
        "worker",
        "rx",
        "tx",
        "forwarded",
        "replies",
        "passed",
        "dropped",
        "need-hop",
        "tx-full",
        "no-port",
        "kernel-drop",
        "csum-fixed",
        "tso-cut",
        "handed-off",
        "handoff-drop",
    ];
    let row = |w: &DataPlaneWorker| {
        [
            w.rx,
            w.tx,
            w.forwarded,
            w.replies,
            w.passed,
            w.dropped,
            w.need_hop,
            w.tx_full,
            w.no_port,
            w.kernel_drops,
            w.csum_completed,
            w.segmented,
            w.handed_off,
            w.handoff_dropped,
        ]
    };
    let mut rows: Vec<(String, [u64; 14])> = workers
        .iter()
        .map(|w| (w.worker.to_string(), row(w)))
        .collect();
    let mut total = [0u64; 14];
    for (_, r) in &rows {
        for (t, v) in total.iter_mut().zip(r) {
            *t = t.saturating_add(*v);
        }
    }
    rows.push(("total".into(), total));
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for (name, r) in &rows {
        widths[0] = widths[0].max(name.len());
        for (i, v) in r.iter().enumerate() {
            widths[i + 1] = widths[i + 1].max(v.to_string().len());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                l.push_str(&format!("{c:<w$}", w = widths[0]));
            } else {
                l.push_str(&format!("  {c:>w$}", w = widths[i]));
            }
        }
        l.push('\n');
        l
    };
    out.push_str(&line(head.iter().map(|h| h.to_string()).collect()));
    for (name, r) in &rows {
        let mut cells = vec![name.clone()];
        cells.extend(r.iter().map(u64::to_string));
        out.push_str(&line(cells));
    }
    if let Some(c) = classifier {
        out.push_str(&format!(
            "classifier: redirected {}, passed {}, no socket {}, malformed {}, fragments {} \
             (claimed {})\n",
            c.redirected, c.passed, c.no_socket, c.malformed, c.fragments, c.fragments_claimed
        ));
        if c.syn_shed > 0 || c.syn_shed_permille > 0 {
            out.push_str(&format!(
                "classifier: SYN guard: pure SYNs {}, shed {} while the slow path was \
                 congested; shedding {:.1}% now\n",
                c.syns,
                c.syn_shed,
                f64::from(c.syn_shed_permille) / 10.0
            ));
        }
    }
    if let Some(f) = fast_path {
        out.push_str(&format_fast_path(f));
    }
    out
}

/// The engine's lines: the table's fill and every drop reason.
pub fn format_engine(e: &EngineCounters) -> String {
    format!(
        "engine: connections {} of {}, table full {} times (at 15/16 of the bound), \
         SYN_RECV evicted {}; next hops {} (pruned {})\n\
         engine drops: table full {}, no connection {}, no real server {}, \
         real server gone {}, ttl {}, rewrite failed {}, malformed {}, other {}\n\
         fragments: datagrams {}, tracked {}, held {}, released {}, expired {}, \
         evicted {}, no room {}; tunnel packets cut {}\n",
        e.conns,
        e.max_conns,
        e.table_full,
        e.evicted_syn_recv,
        e.hops,
        e.hops_pruned,
        e.drop_table_full,
        e.drop_no_conn,
        e.drop_no_dest,
        e.drop_dest_gone,
        e.drop_ttl,
        e.drop_rewrite,
        e.drop_malformed,
        e.drop_other,
        e.frag_datagrams,
        e.frag_tracked,
        e.frag_held,
        e.frag_released,
        e.frag_expired,
        e.frag_evicted,
        e.frag_no_room,
        e.tunnel_fragmented
    )
}

/// The fast path's lines: where it sends, what it holds, what it forwarded.
pub fn format_fast_path(f: &FastPathCounters) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "no interface".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!("fast path: {}, sending to {}", f.mode, list(&f.egress));
    if !f.probed.is_empty() {
        out.push_str(&format!(" (probed: {})", list(&f.probed)));
    }
    out.push('\n');
    for w in &f.why {
        out.push_str(&format!("fast path: towards {w}\n"));
    }
    out.push_str(&format!(
        "fast path: entries {}, installs {}, removals {}, evictions {}\n",
        f.entries, f.installs, f.removals, f.evictions
    ));
    out.push_str(&format!(
        "fast path: forwarded {} packets, {} bytes (credited to the statistics); \
         hits {}, misses {}, skipped {}, too big {}, ttl {}, errors {}\n",
        f.packets, f.bytes, f.hits, f.misses, f.skipped, f.too_big, f.ttl, f.errors
    ));
    out.push_str(&format!(
        "fast path: checksums finished {} (partial from the sender's offload), \
         left to the engine {}\n",
        f.csum_completed, f.csum_slow
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let w = |worker, rx| DataPlaneWorker {
            worker,
            rx,
            tx: rx,
            forwarded: rx,
            ..DataPlaneWorker::default()
        };
        let t = format(
            "xdp",
            &[w(0, 5), w(1, 12345)],
            Some(&ClassifierCounters {
                redirected: 7,
                ..ClassifierCounters::default()
            }),
            None,
        );
        assert_eq!(
            t,
            "packet I/O: xdp\n\
             worker     rx     tx  forwarded  replies  passed  dropped  need-hop  tx-full  no-port  kernel-drop  csum-fixed  tso-cut  handed-off  handoff-drop\n\
             0           5      5          5        0       0        0         0        0        0            0           0        0           0             0\n\
             1       12345  12345      12345        0       0        0         0        0        0            0           0        0           0             0\n\
             total   12350  12350      12350        0       0        0         0        0        0            0           0        0           0             0\n\
             classifier: redirected 7, passed 0, no socket 0, malformed 0, fragments 0 (claimed 0)\n"
        );
        assert_eq!(
            format("none", &[], None, None),
            "packet I/O: none\nno data-plane worker (rvsd --io none forwards nothing)\n"
        );
    }

    #[test]
    fn engine_lines() {
        let e = EngineCounters {
            conns: 3,
            max_conns: 1024,
            evicted_syn_recv: 7,
            table_full: 9,
            drop_table_full: 2,
            ..EngineCounters::default()
        };
        assert_eq!(
            format_engine(&e),
            "engine: connections 3 of 1024, table full 9 times (at 15/16 of the bound), \
             SYN_RECV evicted 7; next hops 0 (pruned 0)\n\
             engine drops: table full 2, no connection 0, no real server 0, real server gone 0, \
             ttl 0, rewrite failed 0, malformed 0, other 0\n\
             fragments: datagrams 0, tracked 0, held 0, released 0, expired 0, evicted 0, \
             no room 0; tunnel packets cut 0\n"
        );
    }

    #[test]
    fn fast_path_lines() {
        let f = FastPathCounters {
            mode: "on".into(),
            egress: vec!["eth0".into(), "eth1".into()],
            probed: vec!["eth0".into(), "eth1".into()],
            why: vec![
                "eth0: on: probe frames redirected out of it reach its peer".into(),
                "eth1: trial: live-frames test runs refused (EPERM)".into(),
            ],
            entries: 8,
            installs: 10,
            removals: 2,
            evictions: 1,
            packets: 400,
            bytes: 123456,
            hits: 401,
            misses: 5,
            skipped: 30,
            too_big: 0,
            ttl: 0,
            errors: 0,
            csum_completed: 7,
            csum_slow: 1,
        };
        let t = format(
            "xdp",
            &[DataPlaneWorker::default()],
            Some(&ClassifierCounters::default()),
            Some(&f),
        );
        assert!(
            t.ends_with(
                "classifier: redirected 0, passed 0, no socket 0, malformed 0, fragments 0 (claimed 0)\n\
                 fast path: on, sending to eth0, eth1 (probed: eth0, eth1)\n\
                 fast path: towards eth0: on: probe frames redirected out of it reach its peer\n\
                 fast path: towards eth1: trial: live-frames test runs refused (EPERM)\n\
                 fast path: entries 8, installs 10, removals 2, evictions 1\n\
                 fast path: forwarded 400 packets, 123456 bytes (credited to the statistics); \
                 hits 401, misses 5, skipped 30, too big 0, ttl 0, errors 0\n\
                 fast path: checksums finished 7 (partial from the sender's offload), \
                 left to the engine 1\n"
            ),
            "{t}"
        );
        let none_yet = FastPathCounters {
            mode: "all".into(),
            ..FastPathCounters::default()
        };
        assert_eq!(
            format_fast_path(&none_yet).lines().next(),
            Some("fast path: all, sending to no interface")
        );
    }
}
