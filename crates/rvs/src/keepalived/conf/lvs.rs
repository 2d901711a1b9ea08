// SPDX-License-Identifier: GPL-2.0-or-later
//! `global_defs`' settings of the IPVS table that keepalived's checker
//! applies (global_parser.c, check_daemon.c): `lvs_flush` (empty the table
//! at the start), `lvs_flush_on_stop [VS]` (at exit, the whole table or
//! the configured virtual servers), `lvs_timeouts [tcp N] [tcpfin N]
//! [udp N]` (ipvsadm's `--set`, at the start and at each reload). Bad
//! values are keepalived's warnings, and ignored.

use super::*;
use crate::keepalived::lex::{ConfError, Node};

/// keepalived's `LVS_MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: u32 = 86_400 * 31;

/// What `lvs_flush_on_stop` removes at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOnStop {
    /// No argument: the whole table (`ipvsadm -C`).
    Full,
    /// `VS`: the virtual servers of the file.
    Vs,
}

/// The table settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lvs {
    /// `lvs_flush`.
    pub flush: bool,
    /// `lvs_flush_on_stop`.
    pub flush_on_stop: Option<FlushOnStop>,
    /// `lvs_timeouts`: tcp, tcpfin, udp in seconds (0: unchanged, as
    /// `ipvsadm --set` takes it); `None`: none given.
    pub timeouts: Option<[u32; 3]>,
}

/// Read the table settings of every `global_defs` block.
pub(super) fn global(tree: &[Node], warnings: &mut Vec<String>) -> Result<Lvs, ConfError> {
    let mut l = Lvs::default();
    let mut t = [0u32; 3];
    for n in tree.iter().filter(|n| n.key == "global_defs") {
        for c in block(n)? {
            match c.key.as_str() {
                "lvs_flush" => {
                    no_block(c)?;
                    l.flush = true;
                }
                "lvs_flush_on_stop" | "lvs_flush_onstop" => {
                    no_block(c)?;
                    match c.args.first().map(String::as_str) {
                        None => l.flush_on_stop = Some(FlushOnStop::Full),
                        Some("VS") => l.flush_on_stop = Some(FlushOnStop::Vs),
                        Some(v) => {
                            warnings.push(format!("{}: Unknown lvs_flush_on_stop type {v}", c.pos))
                        }
                    }
                }
                "lvs_timeouts" => {
                    no_block(c)?;
                    if c.args.len() < 2 {
                        warnings.push(format!(
                            "{}: lvs_timeouts requires at least one option",
                            c.pos
                        ));
                        continue;
                    }
                    let mut it = c.args.iter();
                    while let Some(k) = it.next() {
                        let i = match k.as_str() {
                            "tcp" => 0,
                            "tcpfin" => 1,
                            "udp" => 2,
                            _ => {
                                warnings.push(format!(
                                    "{}: Unknown option {k} specified for lvs_timeouts",
                                    c.pos
                                ));
                                continue;
                            }
                        };
                        let Some(v) = it.next() else {
                            warnings.push(format!(
                                "{}: No value specified for lvs_timeout {k} - ignoring",
                                c.pos
                            ));
                            continue;
                        };
                        match v.parse::<u32>() {
                            Ok(v) if v <= MAX_TIMEOUT => {
                                t[i] = v;
                                l.timeouts = Some(t);
                            }
                            _ => warnings.push(format!(
                                "{}: Invalid lvs_timeout {k} ({v}) - ignoring",
                                c.pos
                            )),
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvs(global: &str) -> (Lvs, Vec<String>) {
        let mut w = Vec::new();
        let t = crate::keepalived::lex::parse_text(
            &format!("global_defs {{\n{global}}}\n"),
            "k.conf",
            Path::new("/x"),
            &mut w,
        )
        .unwrap();
        let c = build(&t, &mut w).unwrap();
        (c.lvs, w)
    }

    #[test]
    fn flush_flush_on_stop_and_timeouts() {
        assert_eq!(lvs("").0, Lvs::default());
        let (l, w) = lvs(" lvs_flush\n lvs_flush_on_stop\n lvs_timeouts tcp 7200 udp 300\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            l,
            Lvs {
                flush: true,
                flush_on_stop: Some(FlushOnStop::Full),
                timeouts: Some([7200, 0, 300]),
            }
        );
        let (l, _) = lvs(" lvs_flush_onstop VS\n lvs_timeouts tcpfin 120\n");
        assert_eq!(l.flush_on_stop, Some(FlushOnStop::Vs));
        assert_eq!(l.timeouts, Some([0, 120, 0]));
    }

    /// keepalived's warnings; the good parts of a line are kept.
    #[test]
    fn bad_values_are_warned_about_and_ignored() {
        let (l, w) = lvs(
            " lvs_flush_on_stop ALL\n lvs_timeouts tcp\n lvs_timeouts tcp x udp 2678401 \
             tcpfin 60 syn 5 udp\n",
        );
        assert_eq!(l.flush_on_stop, None);
        assert_eq!(l.timeouts, Some([0, 60, 0]));
        assert_eq!(
            w,
            [
                "k.conf:2: Unknown lvs_flush_on_stop type ALL",
                "k.conf:3: lvs_timeouts requires at least one option",
                "k.conf:4: Invalid lvs_timeout tcp (x) - ignoring",
                "k.conf:4: Invalid lvs_timeout udp (2678401) - ignoring",
                "k.conf:4: Unknown option syn specified for lvs_timeouts",
                "k.conf:4: Unknown option 5 specified for lvs_timeouts",
                "k.conf:4: No value specified for lvs_timeout udp - ignoring",
            ]
        );
    }
}
