//! `rvs bench [packet|syn|http|conntable|control]`: rvs measured side by side
//! with the kernel and the proxies, in one run.
//!
//! Each family builds what it needs (its own `rvsbench-*` namespaces, a
//! private rvsd, its servers), runs every contender in turn on identical
//! traffic and returns [`Row`]s. `rvs bench` alone runs every family. The
//! output is a table per family, the goals (met / NOT met), then one line of
//! JSON with every figure and ratio (the last line of stdout).
//!
//! `--quick` keeps the whole run under two minutes (CI smoke test: it
//! reports, it never fails on a figure); the full mode stays under twenty.

pub mod conntable;
pub mod control;
// The packet generator (`gen` is a reserved word in Rust 2024).
#[path = "gen.rs"]
pub mod generator;
pub mod http;
pub mod packet;
pub mod svg;
pub mod syn;
pub mod topo;

use std::fmt::Write as _;

pub use control::ControlOpts;

/// The bench families, in the order `rvs bench` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Packet,
    Syn,
    Http,
    Conntable,
    Control,
}

impl Family {
    /// Every family, in run order.
    pub const ALL: [Family; 5] = [
        Family::Conntable,
        Family::Control,
        Family::Packet,
        Family::Syn,
        Family::Http,
    ];

    /// The family's name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Family::Packet => "packet",
            Family::Syn => "syn",
            Family::Http => "http",
            Family::Conntable => "conntable",
            Family::Control => "control",
        }
    }

    /// Parse a family name.
    pub fn parse(s: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown bench '{s}': expected packet, syn, http, conntable or control")
            })
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Families to run, in order.
    pub families: Vec<Family>,
    /// Short runs (CI smoke test).
    pub quick: bool,
    /// Options of the control family.
    pub control: ControlOpts,
    /// Seconds per measured point of the packet and http families
    /// (default: 2 quick, 5 full).
    pub seconds: Option<u32>,
    /// `--svg FILE`: the figures as a chart too.
    pub svg: Option<std::path::PathBuf>,
}

impl Opts {
    /// Runs per measured point (the median is reported): 1 quick, 3 full.
    pub fn repeats(&self) -> u32 {
        if self.quick { 1 } else { 3 }
    }

    /// Seconds per measured point.
    pub fn seconds(&self) -> u32 {
        self.seconds.unwrap_or(if self.quick { 2 } else { 5 })
    }
}

/// One figure of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Short key, also the JSON field name (`mpps`, `ns_per_pkt`, ...).
    pub key: &'static str,
    /// The value; `None` when it could not be measured.
    pub value: Option<f64>,
}

/// One contender's figures in one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub family: &'static str,
    /// Contender and case, e.g. `rvs-xdp dr`.
    pub name: String,
    pub metrics: Vec<Metric>,
    /// Why a row is unavailable, or what saturated; empty if nothing to say.
    pub note: String,
    /// Text fields, e.g. `generator`: JSON strings, in the table's header
    /// when every row of the family has the same, else in each note.
    pub tags: Vec<(&'static str, String)>,
}

impl Row {
    /// A row with the given figures.
    pub fn new(family: &'static str, name: impl Into<String>) -> Row {
        Row {
            family,
            name: name.into(),
            metrics: Vec::new(),
            note: String::new(),
            tags: Vec::new(),
        }
    }

    /// Add a text field.
    pub fn tag(mut self, key: &'static str, value: impl Into<String>) -> Row {
        self.tags.push((key, value.into()));
        self
    }

    /// The text field `key`.
    pub fn get_tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Add a figure.
    pub fn with(mut self, key: &'static str, value: Option<f64>) -> Row {
        self.metrics.push(Metric { key, value });
        self
    }

    /// Set the note.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// The value of figure `key`, if measured.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.key == key)
            .and_then(|m| m.value)
    }
}

/// A goal of the issue and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub name: String,
    /// The measured figure (a ratio or a size); `None` if not measured.
    pub value: Option<f64>,
    pub target: f64,
    /// Met when `value <= target` rather than `>=`.
    pub at_most: bool,
}

impl Goal {
    /// `Some(true)` met, `Some(false)` not met, `None` not measured.
    pub fn met(&self) -> Option<bool> {
        let v = self.value?;
        if !v.is_finite() {
            return None;
        }
        Some(if self.at_most {
            v <= self.target
        } else {
            v >= self.target
        })
    }
}

/// `a / b` when both are measured and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// The figure `key` of the row of `family` named `name`.
pub fn find(rows: &[Row], family: &str, name: &str, key: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.family == family && r.name == name)
        .and_then(|r| r.get(key))
}

/// The figure `key` of the kernel's forwarding (`kernel-forward`) as a
/// measure of what the kernel can do: `None` when that row says the
/// generator limited it (the kernel forwarded all it was offered, so a
/// rate compared with it would be compared with the generator's).
/// Figures per CPU stand either way.
pub fn kernel_capacity(rows: &[Row], key: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.family == "packet" && r.name == "kernel-forward")
        .filter(|r| !r.note.starts_with("generator-limited"))
        .and_then(|r| r.get(key))
}

/// The goals, evaluated over `rows`.
pub fn goals(rows: &[Row]) -> Vec<Goal> {
    let mut g = Vec::new();
    if rows.iter().any(|r| r.family == "packet") {
        // rvs at its best: with the XDP fast path when that row exists.
        let dr_row = if rows
            .iter()
            .any(|r| r.name == "rvs-xdp-fast dr" && r.get("mpps").is_some())
        {
            "rvs-xdp-fast dr"
        } else {
            "rvs-xdp dr"
        };
        let dr = find(rows, "packet", dr_row, "mpps");
        let kernel = kernel_capacity(rows, "mpps");
        g.push(Goal {
            name: format!("packet: {dr_row} / kernel forwarding >= 1.0x"),
            value: ratio(dr, kernel),
            target: 1.0,
            at_most: false,
        });
        g.push(Goal {
            name: format!("packet: {dr_row} / kernel forwarding >= 1.5x (stretch)"),
            value: ratio(dr, kernel),
            target: 1.5,
            at_most: false,
        });
        let dr_lf = find(rows, "packet", dr_row, "pdr_mpps");
        let kernel_lf = kernel_capacity(rows, "pdr_mpps");
        g.push(Goal {
            name: "packet: same, at <= 0.5% loss (pdr_mpps) >= 1.0x".into(),
            value: ratio(dr_lf, kernel_lf),
            target: 1.0,
            at_most: false,
        });
        // The same, per CPU: packets per second one whole CPU would forward
        // at the measured cost (robust when other work shares the CPU).
        let dr_cpu = find(rows, "packet", dr_row, "mpps_per_cpu");
        let kernel_cpu = find(rows, "packet", "kernel-forward", "mpps_per_cpu");
        g.push(Goal {
            name: "packet: same, per CPU (mpps_per_cpu) >= 1.0x".into(),
            value: ratio(dr_cpu, kernel_cpu),
            target: 1.0,
            at_most: false,
        });
        // The slow path's (issue 14): every packet through the engine,
        // the path of the flows the fast path does not cache.
        if let Some(slow) = find(rows, "packet", "rvs-xdp dr", "mpps") {
            g.push(Goal {
                name: "slow path: rvs-xdp dr (fast path off) / kernel forwarding >= 1.0x".into(),
                value: ratio(Some(slow), kernel),
                target: 1.0,
                at_most: false,
            });
            g.push(Goal {
                name: "slow path: same, per CPU (mpps_per_cpu) >= 1.0x".into(),
                value: ratio(
                    find(rows, "packet", "rvs-xdp dr", "mpps_per_cpu"),
                    kernel_cpu,
                ),
                target: 1.0,
                at_most: false,
            });
        }
        // The XDP fast path's own goals (issue 7).
        if dr_row == "rvs-xdp-fast dr" {
            g.push(Goal {
                name: "fast path: rvs-xdp-fast dr / kernel forwarding >= 3.0x".into(),
                value: ratio(dr, kernel),
                target: 3.0,
                at_most: false,
            });
            for m in ["dr", "nat", "tun"] {
                g.push(Goal {
                    name: format!(
                        "fast path: rvs-xdp-fast {m} ns/packet / bare XDP redirect's <= 1.5x"
                    ),
                    value: ratio(
                        find(rows, "packet", &format!("rvs-xdp-fast {m}"), "ns_per_pkt"),
                        find(rows, "packet", "xdp-redirect", "ns_per_pkt"),
                    ),
                    target: 1.5,
                    at_most: true,
                });
            }
        }
    }
    if rows.iter().any(|r| r.family == "http") {
        for tool in ["wrk", "ab"] {
            let dr = find(rows, "http", &format!("{tool} rvs-dr"), "rps");
            let direct = find(rows, "http", &format!("{tool} direct"), "rps");
            let haproxy = find(rows, "http", &format!("{tool} haproxy-tcp"), "rps");
            g.push(Goal {
                name: format!("http ({tool}): rvs DR / direct >= 0.9x"),
                value: ratio(dr, direct),
                target: 0.9,
                at_most: false,
            });
            g.push(Goal {
                name: format!("http ({tool}): rvs DR / HAProxy TCP >= 1.5x"),
                value: ratio(dr, haproxy),
                target: 1.5,
                at_most: false,
            });
        }
    }
    if rows.iter().any(|r| r.family == "conntable") {
        let b = rows
            .iter()
            .filter(|r| r.family == "conntable" && r.name.starts_with("rvs dr"))
            .filter_map(|r| r.get("bytes_per_entry"))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        g.push(Goal {
            name: "conntable: bytes per DR connection entry <= 128".into(),
            value: b,
            target: 128.0,
            at_most: true,
        });
    }
    g
}

/// rvsd's own account of its data plane (the data-plane, worker, classifier
/// and fast-path lines of its log: forwarded, dropped, tx-full, hits...),
/// on stderr: which path the packets took and where rvs lost some.
pub fn print_worker_summary(what: &str, log: &str) {
    for l in log.lines().filter(|l| {
        (l.contains("worker") && l.contains("rx "))
            || l.contains("fast path")
            || l.contains("classifier:")
    }) {
        eprintln!("rvs bench {what}: {}", l.trim());
    }
}

/// Suffix of the packet rows measured with partial UDP checksums.
pub const PARTIAL_CSUM: &str = " partial-csum";

/// Ratios against the family's reference, added to each row: packet rows
/// get `x_kernel` (delivered rate over `kernel-forward`'s) and
/// `x_kernel_pdr` (the same of the rates at <= 0.5% loss), http rows
/// `x_direct` (requests/s over the same tool's `direct` row), syn rows
/// `x_kernel` (new connections per second over the kernel's forwarding of
/// the same SYNs). Packet rows
/// measured with partial checksums (`NAME partial-csum`) also get
/// `x_full_csum` (their rate over `NAME`'s, with full checksums) and
/// `cost_x_full_csum` (their CPU per packet over `NAME`'s): the cost of
/// finishing the checksums.
pub fn add_ratios(rows: &mut [Row]) {
    let full: Vec<(String, Option<f64>, Option<f64>)> = rows
        .iter()
        .filter(|r| r.family == "packet" && r.name.ends_with(PARTIAL_CSUM))
        .map(|r| {
            let base = r.name.trim_end_matches(PARTIAL_CSUM);
            (
                r.name.clone(),
                find(rows, "packet", base, "mpps"),
                find(rows, "packet", base, "ns_per_pkt"),
            )
        })
        .collect();
    let kernel = find(rows, "packet", "kernel-forward", "mpps");
    let kernel_lf = find(rows, "packet", "kernel-forward", "pdr_mpps");
    let syn_kernel = find(rows, "syn", "kernel-forward", "kcps");
    let direct: Vec<(String, Option<f64>)> = ["wrk", "ab"]
        .iter()
        .map(|t| {
            (
                format!("{t} "),
                find(rows, "http", &format!("{t} direct"), "rps"),
            )
        })
        .collect();
    for r in rows.iter_mut() {
        match r.family {
            "packet" => {
                let v = ratio(r.get("mpps"), kernel);
                r.metrics.push(Metric {
                    key: "x_kernel",
                    value: v,
                });
                let v = ratio(r.get("pdr_mpps"), kernel_lf);
                r.metrics.push(Metric {
                    key: "x_kernel_pdr",
                    value: v,
                });
                if let Some((_, mpps, ns)) = full.iter().find(|(n, _, _)| *n == r.name) {
                    let v = ratio(r.get("mpps"), *mpps);
                    r.metrics.push(Metric {
                        key: "x_full_csum",
                        value: v,
                    });
                    let v = ratio(r.get("ns_per_pkt"), *ns);
                    r.metrics.push(Metric {
                        key: "cost_x_full_csum",
                        value: v,
                    });
                }
            }
            "syn" => {
                let v = ratio(r.get("kcps"), syn_kernel);
                r.metrics.push(Metric {
                    key: "x_kernel",
                    value: v,
                });
            }
            "http" => {
                let base = direct
                    .iter()
                    .find(|(p, _)| r.name.starts_with(p.as_str()))
                    .and_then(|(_, v)| *v);
                let v = ratio(r.get("rps"), base);
                r.metrics.push(Metric {
                    key: "x_direct",
                    value: v,
                });
            }
            _ => {}
        }
    }
}

/// A figure for the table: three significant digits or so, `-` if absent.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "-".into(),
        Some(v) => {
            let a = v.abs();
            if a == 0.0 {
                "0".into()
            } else if a >= 1000.0 {
                format!("{v:.0}")
            } else if a >= 100.0 {
                format!("{v:.1}")
            } else if a >= 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.3}")
            }
        }
    }
}

/// The table of one family: a header of every figure key (in first-seen
/// order), one line per row, its note at the end. A text field every row
/// has with the same value ends the header (`generator: ...`); one that
/// differs starts each row's note.
pub fn table(family: &str, rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.family == family).collect();
    let mut tag_keys: Vec<&str> = Vec::new();
    for r in &rows {
        for (k, _) in &r.tags {
            if !tag_keys.contains(k) {
                tag_keys.push(k);
            }
        }
    }
    let (common, varying): (Vec<&str>, Vec<&str>) = tag_keys.into_iter().partition(|k| {
        let first = rows.first().and_then(|r| r.get_tag(k));
        first.is_some() && rows.iter().all(|r| r.get_tag(k) == first)
    });
    let mut keys: Vec<&str> = Vec::new();
    for r in &rows {
        for m in &r.metrics {
            if !keys.contains(&m.key) {
                keys.push(m.key);
            }
        }
    }
    let name_w = rows
        .iter()
        .map(|r| r.name.len())
        .chain(std::iter::once(family.len()))
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = keys
        .iter()
        .map(|k| {
            rows.iter()
                .map(|r| fmt_value(r.get(k)).len())
                .chain(std::iter::once(k.len()))
                .max()
                .unwrap_or(1)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{family:<name_w$}");
    for (k, w) in keys.iter().zip(&widths) {
        let _ = write!(out, "  {k:>w$}");
    }
    for k in &common {
        let _ = write!(out, "  {k}: {}", rows[0].get_tag(k).unwrap_or(""));
    }
    out.push('\n');
    for r in rows {
        let _ = write!(out, "{:<name_w$}", r.name);
        for (k, w) in keys.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", fmt_value(r.get(k)));
        }
        let mut note: Vec<String> = varying
            .iter()
            .filter_map(|k| r.get_tag(k).map(|v| format!("{k}: {v}")))
            .collect();
        if !r.note.is_empty() {
            note.push(r.note.clone());
        }
        if !note.is_empty() {
            let _ = write!(out, "  {}", note.join("; "));
        }
        out.push('\n');
    }
    out
}

/// The goals, one line each.
pub fn goals_text(goals: &[Goal]) -> String {
    let mut out = String::new();
    if goals.is_empty() {
        out.push_str("  (none for these families)\n");
    }
    for g in goals {
        let state = match g.met() {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let _ = writeln!(out, "  {:<55} {:>8}   {state}", g.name, fmt_value(g.value));
    }
    out
}

fn json_num(v: Option<f64>) -> serde_json::Value {
    match v {
        Some(v) if v.is_finite() => serde_json::json!(v),
        _ => serde_json::Value::Null,
    }
}

/// The one-line JSON report: every row with its figures, every goal.
pub fn json_line(quick: bool, rows: &[Row], goals: &[Goal]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            o.insert("family".into(), r.family.into());
            o.insert("name".into(), r.name.clone().into());
            for m in &r.metrics {
                o.insert(m.key.into(), json_num(m.value));
            }
            for (k, v) in &r.tags {
                o.insert((*k).into(), v.clone().into());
            }
            o.insert("note".into(), r.note.clone().into());
            serde_json::Value::Object(o)
        })
        .collect();
    let goals: Vec<serde_json::Value> = goals
        .iter()
        .map(|g| {
            serde_json::json!({
                "goal": g.name,
                "value": json_num(g.value),
                "target": g.target,
                "at_most": g.at_most,
                "met": g.met(),
            })
        })
        .collect();
    serde_json::json!({
        "bench": "rvs",
        "version": env!("CARGO_PKG_VERSION"),
        "quick": quick,
        "rows": rows,
        "goals": goals,
    })
    .to_string()
}

/// Run the families asked for; print each table as it completes, then the
/// goals and the JSON line. A family that fails leaves an error row (its
/// message in the note) and the others still run.
pub fn run(o: &Opts) -> Result<(), String> {
    let stop = topo::stop_flag()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut failed = Vec::new();
    println!(
        "rvs bench ({}): {}",
        if o.quick { "quick" } else { "full" },
        o.families
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for &f in &o.families {
        if topo::stopped(&stop) {
            break;
        }
        let res = match f {
            Family::Conntable => conntable::run(o.quick),
            Family::Control => {
                let c = if o.quick {
                    ControlOpts {
                        services: o.control.services.min(1000),
                        dests: o.control.dests,
                        repeat: 1,
                    }
                } else {
                    o.control.clone()
                };
                control::run(&c).map(|(text, rows)| {
                    print!("{text}");
                    rows
                })
            }
            Family::Packet => packet::run(o, &stop),
            Family::Syn => syn::run(o, &stop),
            Family::Http => http::run(o, &stop),
        };
        match res {
            Ok(mut r) => {
                add_ratios(&mut r);
                println!("\n{}", table(f.name(), &r));
                rows.extend(r);
            }
            Err(e) => {
                eprintln!("rvs bench {}: {e}", f.name());
                failed.push(f.name());
                let r =
                    Row::new(f.name(), "error").note(e.lines().next().unwrap_or("").to_string());
                println!("\n{}", table(f.name(), std::slice::from_ref(&r)));
                rows.push(r);
            }
        }
    }
    let g = goals(&rows);
    println!("goals:\n{}", goals_text(&g));
    println!("{}", json_line(o.quick, &rows, &g));
    if let Some(path) = &o.svg {
        let title = format!(
            "rvs bench ({}): {} rows",
            if o.quick { "quick" } else { "full" },
            rows.len()
        );
        std::fs::write(path, svg::chart(&title, &rows))
            .map_err(|e| format!("--svg {}: {e}", path.display()))?;
        println!("chart written to {}", path.display());
    }
    if topo::stopped(&stop) {
        return Err("interrupted".into());
    }
    if !failed.is_empty() {
        return Err(format!("failed: {}", failed.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
