//! `rvs bench --svg FILE`: the figures as a chart (a pure function from
//! the rows to SVG text, no dependency).
//!
//! One panel per family and figure (`mpps`, `ratio`, `rps`, …): a bar per
//! contender, scaled to the panel's largest value, with the value printed
//! beside it. Figures that could not be measured are shown as "n/a".

use std::fmt::Write as _;

use super::Row;

const WIDTH: u32 = 760;
const LABEL_W: u32 = 230;
const BAR_W: u32 = 420;
const ROW_H: u32 = 18;
const TITLE_H: u32 = 26;
const GAP: u32 = 14;

/// Escape text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The chart of `rows` (titled `title`).
pub fn chart(title: &str, rows: &[Row]) -> String {
    // Panels: (family, key) in first-seen order.
    let mut panels: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        for m in &r.metrics {
            if !panels.contains(&(r.family, m.key)) {
                panels.push((r.family, m.key));
            }
        }
    }
    let mut body = String::new();
    let mut y = 40;
    for (family, key) in &panels {
        let bars: Vec<(&str, Option<f64>)> = rows
            .iter()
            .filter(|r| r.family == *family && r.metrics.iter().any(|m| m.key == *key))
            .map(|r| (r.name.as_str(), r.get(key)))
            .collect();
        let max = bars
            .iter()
            .filter_map(|(_, v)| *v)
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max);
        let _ = writeln!(
            body,
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{} — {}</text>",
            y + 16,
            esc(family),
            esc(key)
        );
        y += TITLE_H;
        for (name, v) in bars {
            let _ = writeln!(body, "<text x=\"10\" y=\"{}\">{}</text>", y + 13, esc(name));
            match v {
                Some(v) if v.is_finite() => {
                    let w = if max > 0.0 {
                        ((v / max) * f64::from(BAR_W)).max(1.0)
                    } else {
                        1.0
                    };
                    let _ = writeln!(
                        body,
                        "<rect x=\"{LABEL_W}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" \
                         fill=\"#4a7ab5\"/>",
                        y + 2,
                        ROW_H - 4
                    );
                    let _ = writeln!(
                        body,
                        "<text x=\"{:.1}\" y=\"{}\">{}</text>",
                        f64::from(LABEL_W) + w + 6.0,
                        y + 13,
                        fmt(v)
                    );
                }
                _ => {
                    let _ = writeln!(
                        body,
                        "<text x=\"{LABEL_W}\" y=\"{}\" fill=\"#999\">n/a</text>",
                        y + 13
                    );
                }
            }
            y += ROW_H;
        }
        y += GAP;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n{body}</svg>\n",
        y + 10,
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Metric, Row};
    use super::*;

    fn row(family: &'static str, name: &str, figures: &[(&'static str, Option<f64>)]) -> Row {
        let mut r = Row::new(family, name);
        r.metrics = figures
            .iter()
            .map(|&(key, value)| Metric { key, value })
            .collect();
        r
    }

    #[test]
    fn a_bar_per_value_scaled_and_escaped() {
        let rows = [
            row("packet", "kernel <dr>", &[("mpps", Some(1.0))]),
            row(
                "packet",
                "rvs-xdp dr",
                &[("mpps", Some(2.0)), ("ratio", Some(2.0))],
            ),
            row("http", "haproxy", &[("rps", None)]),
        ];
        let svg = chart("rvs bench & co", &rows);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Bars: the background plus one per measured value.
        assert_eq!(svg.matches("<rect").count(), 1 + 3);
        assert!(svg.contains("width=\"420.0\""), "the largest is full width");
        assert!(svg.contains("width=\"210.0\""), "half of it");
        assert!(svg.contains("kernel &lt;dr&gt;") && svg.contains("rvs bench &amp; co"));
        assert!(svg.contains(">n/a<"));
        assert_eq!(
            svg.matches("font-weight=\"bold\">").count(),
            1 + 3,
            "title, 3 panels"
        );
    }
}
