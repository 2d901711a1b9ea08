//! `rvs dataplane`: the live counters of rvsd's packet path, per worker
//! thread, and the XDP classifier's.

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{ClassifierCounters, DataPlaneWorker, Reply, Request};

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
        } => Ok(format(&mode, &workers, classifier.as_ref())),
        Reply::Error(e) => Err(format!("rvsd: {} (errno {})", e.message, e.errno)),
        _ => Err("unexpected reply from rvsd".into()),
    }
}

/// The table: one row per worker and a total, then the classifier's counters.
pub fn format(
    mode: &str,
    workers: &[DataPlaneWorker],
    classifier: Option<&ClassifierCounters>,
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
        ]
    };
    let mut rows: Vec<(String, [u64; 10])> = workers
        .iter()
        .map(|w| (w.worker.to_string(), row(w)))
        .collect();
    let mut total = [0u64; 10];
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
            "classifier: redirected {}, passed {}, no socket {}, malformed {}, fragments {}\n",
            c.redirected, c.passed, c.no_socket, c.malformed, c.fragments
        ));
    }
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
        );
        assert_eq!(
            t,
            "packet I/O: xdp\n\
             worker     rx     tx  forwarded  replies  passed  dropped  need-hop  tx-full  no-port  kernel-drop\n\
             0           5      5          5        0       0        0         0        0        0            0\n\
             1       12345  12345      12345        0       0        0         0        0        0            0\n\
             total   12350  12350      12350        0       0        0         0        0        0            0\n\
             classifier: redirected 7, passed 0, no socket 0, malformed 0, fragments 0\n"
        );
        assert_eq!(
            format("none", &[], None),
            "packet I/O: none\nno data-plane worker (rvsd --io none forwards nothing)\n"
        );
    }
}
