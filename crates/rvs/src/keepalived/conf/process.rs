// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's `global_defs` settings of its checker process
//! (`checker_priority`, `checker_cpu_affinity`, `checker_no_swap`,
//! `checker_rt_priority`, `checker_rlimit_rttime`), as values; `rvs health
//! run` applies them at start.

use super::*;
use crate::keepalived::lex::{ConfError, Node, err_at};

/// keepalived's `global_defs` settings of its checker process, applied by
/// `rvs health run` when it starts (a reload that changes them says they
/// wait for a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `checker_priority`: the nice value (-20..=19).
    pub priority: Option<i32>,
    /// `checker_cpu_affinity`: the CPUs it may run on.
    pub cpu_affinity: Vec<usize>,
    /// `checker_no_swap`: its memory locked (mlockall).
    pub no_swap: bool,
    /// `checker_rt_priority`: SCHED_RR at this priority for the thread
    /// that runs the checks (clamped to the kernel's range, as keepalived
    /// clamps it).
    pub rt_priority: Option<i32>,
    /// `checker_rlimit_rttime`: the CPU time in µs the real-time thread
    /// may use without blocking (RLIMIT_RTTIME; a warning at half of it);
    /// keepalived's default 10000; 0: no limit.
    pub rlimit_rttime: u64,
}

/// keepalived's `RT_RLIMIT_DEFAULT` (µs).
pub const RT_RLIMIT_DEFAULT: u64 = 10_000;

impl Default for Process {
    fn default() -> Process {
        Process {
            priority: None,
            cpu_affinity: Vec::new(),
            no_swap: false,
            rt_priority: None,
            rlimit_rttime: RT_RLIMIT_DEFAULT,
        }
    }
}

/// `global_defs`'s checker process settings; the rest of the block is
/// keepalived's own (and the script settings, `scripts.rs`).
pub(super) fn process(tree: &[Node], warnings: &mut Vec<String>) -> Result<Process, ConfError> {
    let mut p = Process::default();
    for n in tree.iter().filter(|n| n.key == "global_defs") {
        for c in block(n)? {
            match c.key.as_str() {
                "checker_priority" => {
                    let v = value(c)?;
                    p.priority = Some(
                        v.parse::<i32>()
                            .ok()
                            .filter(|v| (-20..=19).contains(v))
                            .ok_or_else(|| {
                                err_at(&c.pos, format!("invalid checker_priority '{v}' (-20..=19)"))
                            })?,
                    );
                }
                "checker_cpu_affinity" => {
                    no_block(c)?;
                    if c.args.is_empty() {
                        return Err(err_at(&c.pos, "'checker_cpu_affinity' needs a CPU"));
                    }
                    p.cpu_affinity = c
                        .args
                        .iter()
                        .map(|a| {
                            a.parse::<usize>()
                                .ok()
                                .filter(|&x| x < 1024)
                                .ok_or_else(|| err_at(&c.pos, format!("invalid CPU '{a}'")))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "checker_no_swap" => p.no_swap = flag(c)?,
                // keepalived's get_realtime_priority: a bad value is a
                // warning and ignored, one out of range clamped.
                "checker_rt_priority" => {
                    no_block(c)?;
                    let (min, max) = rvs_io::sched::round_robin_range();
                    match c.args.first().map(|a| (a, a.parse::<i64>())) {
                        None => warnings.push(format!(
                            "{}: No checker process real-time priority specified",
                            c.pos
                        )),
                        Some((a, Err(_))) => warnings.push(format!(
                            "{}: checker process real-time priority '{a}' invalid",
                            c.pos
                        )),
                        Some((_, Ok(v))) if v < i64::from(min) => {
                            warnings.push(format!(
                                "{}: checker process real-time priority {v} less than minimum \
                                 {min} - setting to minimum",
                                c.pos
                            ));
                            p.rt_priority = Some(min);
                        }
                        Some((_, Ok(v))) if v > i64::from(max) => {
                            warnings.push(format!(
                                "{}: checker process real-time priority {v} greater than \
                                 maximum {max} - setting to maximum",
                                c.pos
                            ));
                            p.rt_priority = Some(max);
                        }
                        Some((_, Ok(v))) => p.rt_priority = i32::try_from(v).ok(),
                    }
                }
                // keepalived's get_rt_rlimit: 1..=2^32-1 µs (1 is 2: half
                // of it must not be 0); a bad value is a warning and no
                // limit.
                "checker_rlimit_rttime" | "checker_rlimit_rtime" => {
                    no_block(c)?;
                    if c.key == "checker_rlimit_rtime" {
                        warnings.push(format!(
                            "{}: Keyword 'checker_rlimit_rtime' is deprecated - please use \
                             'checker_rlimit_rttime'",
                            c.pos
                        ));
                    }
                    let v = c.args.first().map(|a| (a, a.parse::<u64>()));
                    p.rlimit_rttime = match v {
                        Some((_, Ok(v))) if (1..=u64::from(u32::MAX)).contains(&v) => v.max(2),
                        _ => {
                            warnings.push(format!(
                                "{}: Invalid checker real-time limit - {}",
                                c.pos,
                                v.map_or("", |(a, _)| a.as_str())
                            ));
                            0
                        }
                    };
                }
                _ => {}
            }
        }
    }
    Ok(p)
}
