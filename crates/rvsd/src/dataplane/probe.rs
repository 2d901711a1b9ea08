//! Whether the fast path may send to an interface: which interfaces take
//! redirected XDP frames, probed with live frames or, where the host
//! refuses those, decided by watching real redirects.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rvs_io::flowcache::{FlowCache, FlowCacheError, Gate};
use rvs_io::redirwatch::{RedirectWatch, Sample};
use rvs_io::xdp::{AttachMode, Classifier, XdpError};

use super::fastsync::FastSync;
use super::{DpShared, Filter, Port};
use crate::options::FastPathMode;

/// An interface the fast path probes ([`Classifier::probe_redirect`]).
#[derive(Debug, Clone)]
pub(super) struct Probed {
    pub(super) ifindex: u32,
    pub(super) name: String,
    pub(super) mac: [u8; 6],
}

/// The interfaces the fast path may send to (it always redirects, also back
/// out of the ingress interface), and those to probe: in
/// generic (SKB) mode, redirects go through the kernel's
/// transmit path, and physical interfaces in native mode take redirected
/// frames; a virtual one (veth...) in native mode does only when its peer
/// is in NAPI mode (an XDP program or GRO on it): with `--fast-path all`
/// it is assumed, with `on` probed ([`Classifier::probe_redirect`]), now
/// and then every [`PROBE_INTERVAL`]; the first probes' answers are
/// returned (one per probed interface; where live-frames test runs are
/// refused, [`FastSync::first_probe`] watches real redirects instead).
pub(super) fn fast_egress(
    c: &Classifier,
    ports: &[Port],
    mode: FastPathMode,
    mac_of: impl Fn(u32) -> Option<[u8; 6]>,
) -> (HashSet<u32>, Vec<Probed>, Vec<Result<bool, XdpError>>) {
    let mut set = HashSet::new();
    let mut probed = Vec::new();
    let mut answers = Vec::new();
    for p in ports {
        let skb = c
            .attachments()
            .iter()
            .any(|a| a.ifindex == p.ifindex && a.mode == AttachMode::Skb);
        if skb || mode == FastPathMode::All || !is_virtual(&p.name) {
            set.insert(p.ifindex);
            continue;
        }
        let Some(mac) = mac_of(p.ifindex) else {
            continue;
        };
        let pr = Probed {
            ifindex: p.ifindex,
            name: p.name.clone(),
            mac,
        };
        let answer = c.probe_redirect(&pr.name, pr.ifindex, pr.mac);
        if matches!(answer, Ok(true)) {
            set.insert(p.ifindex);
        }
        answers.push(answer);
        probed.push(pr);
    }
    (set, probed, answers)
}

/// How often the probed interfaces are probed again.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `ifname` is a virtual device (`/sys/class/net/IF` points under
/// `/sys/devices/virtual`). Unknown counts as virtual.
fn is_virtual(ifname: &str) -> bool {
    std::fs::read_link(format!("/sys/class/net/{ifname}"))
        .map(|p| p.to_string_lossy().contains("/virtual/"))
        .unwrap_or(true)
}

/// Consecutive probes that must disagree with what an interface is
/// thought to do before the fast path changes its mind: one probe lost
/// among a busy peer's traffic must not move every flow of the interface
/// to the engine and back.
const PROBE_FLIP: u8 = 2;

/// Whether a probed interface takes redirected XDP frames, as its probes
/// tell, with hysteresis ([`PROBE_FLIP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeState {
    takes: bool,
    /// Consecutive probes that said otherwise.
    against: u8,
}

impl ProbeState {
    /// Starting from the first probe's answer.
    fn new(takes: bool) -> ProbeState {
        ProbeState { takes, against: 0 }
    }

    /// Take one probe's answer (`None`: the probe failed, which tells
    /// nothing and changes nothing). Returns the new answer when it flips.
    fn observe(&mut self, answer: Option<bool>) -> Option<bool> {
        let a = answer?;
        if a == self.takes {
            self.against = 0;
            return None;
        }
        self.against = self.against.saturating_add(1);
        if self.against < PROBE_FLIP {
            return None;
        }
        self.takes = a;
        self.against = 0;
        Some(a)
    }
}

/// How the fast path decides whether a probed interface takes redirected
/// XDP frames.
#[derive(Debug)]
enum ProbeHow {
    /// Live-frames probes ([`Classifier::probe_redirect`]) every
    /// [`PROBE_INTERVAL`], with hysteresis.
    Live(ProbeState),
    /// The host refuses live-frames test runs (`refused` says how): the
    /// fast path's own redirects there are watched, every
    /// [`PROBE_INTERVAL`] ([`rvs_io::redirwatch`]).
    Watch {
        watch: RedirectWatch,
        refused: String,
    },
}

/// A probed interface's state, one per [`DpShared::fast_probed`].
#[derive(Debug)]
pub(super) struct Probe {
    how: ProbeHow,
    /// The last probe or reading failed: why.
    failed: Option<String>,
    /// Live frames refused and its redirects cannot be watched either:
    /// no longer probed (off, `failed` says why).
    given_up: bool,
}

impl Probe {
    pub(super) fn live(takes: bool) -> Probe {
        Probe {
            how: ProbeHow::Live(ProbeState::new(takes)),
            failed: None,
            given_up: false,
        }
    }

    pub(super) fn watching(&self) -> bool {
        matches!(self.how, ProbeHow::Watch { .. })
    }

    /// Where it stands and why, for `rvs dataplane`: `NAME: on|off|trial: …`.
    pub(super) fn why(&self, name: &str, now: Instant) -> String {
        let mut s = match &self.how {
            ProbeHow::Live(st) if st.takes => format!(
                "{name}: on: probe frames redirected out of it reach its peer \
                 (in NAPI mode); probed every second"
            ),
            ProbeHow::Live(_) if self.given_up => format!("{name}: off"),
            ProbeHow::Live(_) => format!(
                "{name}: off: probe frames redirected out of it are refused whole: its \
                 peer is not in NAPI mode (no XDP program or GRO on it); probed every second"
            ),
            ProbeHow::Watch { watch, refused } => format!(
                "{name}: {}; {refused}, so deciding by watching real redirects",
                watch.describe(now)
            ),
        };
        if let Some(e) = &self.failed {
            s.push_str(&format!("; last probe failed: {e}"));
        }
        s
    }
}

/// One round's reading of a probed interface.
#[derive(Debug)]
pub(super) enum ProbeInput {
    /// Not probed this round.
    Skip,
    /// A live-frames probe's answer.
    Live(Result<bool, XdpError>),
    /// The watch's readings.
    Watch(Result<Sample, WatchError>),
}

/// Why the redirects to an interface cannot be watched, or read.
#[derive(Debug, thiserror::Error)]
pub(super) enum WatchError {
    /// The fast path's cache refused.
    #[error(transparent)]
    Cache(#[from] FlowCacheError),
    /// The interface has no watch slot.
    #[error("not watched")]
    NotWatched,
    /// Its watch counts could not be read (shared by the readings of one
    /// round).
    #[error("reading its redirect counts: {0}")]
    Counts(#[source] Arc<FlowCacheError>),
    /// The driver's XDP transmit counters could not be read.
    #[error(transparent)]
    Xmit(#[from] XdpError),
}

/// Start watching the redirects to `p` ([`rvs_io::redirwatch`]): counted
/// from now on, gated (a trial).
fn start_watch(cache: &mut FlowCache, p: &Probed) -> Result<RedirectWatch, WatchError> {
    cache.watch(p.ifindex, Gate::Budget(0))?;
    let watch = cache
        .watch_counts(p.ifindex)?
        .ok_or(WatchError::NotWatched)?;
    let counters = rvs_io::xdp::xdp_xmit_counters(&p.name)?;
    let (w, gate) = RedirectWatch::new(Sample { watch, counters });
    cache.set_gate(p.ifindex, gate)?;
    Ok(w)
}

impl FastSync {
    /// The state of probed interface `p` from its first probe's `answer`;
    /// where live-frames test runs are refused, its redirects are watched
    /// instead. Failures are logged.
    pub(super) fn first_probe(
        &mut self,
        cache: &mut FlowCache,
        p: &Probed,
        answer: Result<bool, XdpError>,
    ) -> Probe {
        match answer {
            Ok(takes) => Probe::live(takes),
            Err(XdpError::LiveFramesRefused { detail, .. }) => self.watch_probe(cache, p, detail),
            Err(e) => {
                tracing::warn!(
                    iface = %p.name,
                    "fast path: {}: redirect probe failed: {e}; the fast path does \
                     not send there (probed again every second)",
                    p.name
                );
                Probe {
                    failed: Some(e.to_string()),
                    ..Probe::live(false)
                }
            }
        }
    }

    /// Live frames are refused (`refused`): watch `p`'s real redirects.
    fn watch_probe(&mut self, cache: &mut FlowCache, p: &Probed, refused: String) -> Probe {
        match start_watch(cache, p) {
            Ok(watch) => {
                tracing::info!(
                    iface = %p.name,
                    "fast path: {}: {refused}; deciding by watching real redirects \
                     (trials of {} frame(s), retried after 1 s doubling to 60 s while lost)",
                    p.name,
                    rvs_io::redirwatch::TRIAL_BUDGET
                );
                self.watched.insert(p.ifindex);
                Probe {
                    how: ProbeHow::Watch { watch, refused },
                    failed: None,
                    given_up: false,
                }
            }
            Err(e) => {
                tracing::warn!(
                    iface = %p.name,
                    "fast path: {}: {refused}, and its redirects cannot be watched \
                     ({e}): the fast path does not send there",
                    p.name
                );
                Probe {
                    failed: Some(format!("{refused}; cannot watch its redirects: {e}")),
                    given_up: true,
                    ..Probe::live(false)
                }
            }
        }
    }

    /// Take the probes' readings (one per probed interface): an interface
    /// whose answer flips gains or loses the fast path.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_probes(
        &mut self,
        probed: &[Probed],
        inputs: Vec<ProbeInput>,
        cache: &mut FlowCache,
        engines: &mut super::fastsync::EngineSet<'_, '_>,
        now: rvs_core::Instant,
        mono: u64,
        wall: Instant,
    ) {
        for (i, (p, input)) in probed.iter().zip(inputs).enumerate() {
            if i >= self.probes.len() {
                break;
            }
            let flip = match input {
                ProbeInput::Skip => None,
                ProbeInput::Live(Err(XdpError::LiveFramesRefused { detail, .. })) => {
                    // Its entries have no watch slot: gone, cached again
                    // (with one) at their next packet.
                    self.egress.remove(&p.ifindex);
                    self.remove_towards(cache, engines, p.ifindex, now, mono);
                    let probe = self.watch_probe(cache, p, detail);
                    self.probes[i] = probe;
                    engines.each(|_, e| e.fast_path_forget_all());
                    continue;
                }
                ProbeInput::Live(answer) => {
                    let pr = &mut self.probes[i];
                    let answer = match answer {
                        Ok(a) => {
                            pr.failed = None;
                            Some(a)
                        }
                        Err(e) => {
                            pr.failed = Some(e.to_string());
                            None
                        }
                    };
                    match &mut pr.how {
                        ProbeHow::Live(st) => st.observe(answer),
                        ProbeHow::Watch { .. } => None,
                    }
                }
                ProbeInput::Watch(reading) => {
                    let pr = &mut self.probes[i];
                    let ProbeHow::Watch { watch, .. } = &mut pr.how else {
                        continue;
                    };
                    match reading {
                        Ok(sample) => {
                            pr.failed = None;
                            let step = watch.round(sample, wall);
                            if let Some(g) = step.gate
                                && let Err(e) = cache.set_gate(p.ifindex, g)
                            {
                                pr.failed = Some(format!("cannot set its gate: {e}"));
                            }
                            step.flip
                        }
                        Err(e) => {
                            pr.failed = Some(e.to_string());
                            None
                        }
                    }
                }
            };
            let watched = self.probes[i].watching();
            match flip {
                Some(true) => {
                    tracing::info!(
                        iface = %p.name,
                        "fast path: {} takes redirected XDP frames now{}",
                        p.name,
                        if watched {
                            " (real redirects reached its peer)"
                        } else {
                            ""
                        }
                    );
                    self.egress.insert(p.ifindex);
                    if !watched {
                        // Flows the engine thought cached but that were not
                        // (their egress was left out): cached at their next
                        // packet.
                        engines.each(|_, e| e.fast_path_forget_all());
                    }
                }
                Some(false) => {
                    tracing::warn!(
                        iface = %p.name,
                        "fast path: {} no longer takes redirected XDP frames{}: \
                         its flows go through the engine",
                        p.name,
                        if watched {
                            " (real redirects left its xdp_xmit counters still)"
                        } else {
                            ""
                        }
                    );
                    self.egress.remove(&p.ifindex);
                    if !watched {
                        self.remove_towards(cache, engines, p.ifindex, now, mono);
                    }
                }
                None => {}
            }
        }
    }

    /// The watched interfaces (ifindex) in a trial.
    pub(super) fn trials(&self, probed: &[Probed]) -> Vec<u32> {
        probed
            .iter()
            .zip(&self.probes)
            .filter(|(_, pr)| {
                matches!(&pr.how, ProbeHow::Watch { watch, .. }
                    if watch.phase() == rvs_io::redirwatch::Phase::Trial)
            })
            .map(|(p, _)| p.ifindex)
            .collect()
    }
}

/// One round's readings of the probed interfaces (without the state lock:
/// the workers go on meanwhile): a live-frames probe each, or for those
/// watched (live frames refused), the fast path's counts of its redirects
/// there (with the filter lock) and then the veth's xdp_xmit counters
/// (without), read again after a moment when redirects were counted and
/// the counters did not move (the kernel sends a redirected frame at the
/// end of its poll, after the count).
pub(super) fn probe_inputs(dp: &DpShared) -> Vec<ProbeInput> {
    let (watching, skip): (Vec<bool>, Vec<bool>) = match dp.fast() {
        Some(f) => f
            .probes
            .iter()
            .map(|pr| (pr.watching(), pr.given_up))
            .unzip(),
        None => return Vec::new(),
    };
    let n = dp.fast_probed.len().min(watching.len());
    let mut inputs: Vec<ProbeInput> = (0..n).map(|_| ProbeInput::Skip).collect();
    let mut counts = vec![None; n];
    if let Some(Filter::Xdp(c)) = &*dp.filter() {
        for (i, p) in dp.fast_probed.iter().take(n).enumerate() {
            if skip[i] {
                continue;
            }
            if watching[i] {
                counts[i] = Some(c.flow_cache().watch_counts(p.ifindex).map_err(Arc::new));
            } else {
                inputs[i] = ProbeInput::Live(c.probe_redirect(&p.name, p.ifindex, p.mac));
            }
        }
    }
    let read = |i: usize, p: &Probed| -> Option<Result<Sample, WatchError>> {
        let watch = match counts[i].clone()? {
            Ok(Some(w)) => w,
            Ok(None) => return Some(Err(WatchError::NotWatched)),
            Err(e) => return Some(Err(WatchError::Counts(e))),
        };
        Some(
            rvs_io::xdp::xdp_xmit_counters(&p.name)
                .map(|counters| Sample { watch, counters })
                .map_err(WatchError::from),
        )
    };
    let mut settle = Vec::new();
    for (i, p) in dp.fast_probed.iter().take(n).enumerate() {
        if let Some(r) = read(i, p) {
            if let Ok(s) = &r
                && let Some(f) = dp.fast()
                && let Some(Probe {
                    how: ProbeHow::Watch { watch, .. },
                    ..
                }) = f.probes.get(i)
                && watch.settle_wanted(s)
            {
                settle.push(i);
            }
            inputs[i] = ProbeInput::Watch(r);
        }
    }
    if !settle.is_empty() {
        std::thread::sleep(WATCH_SETTLE);
        for i in settle {
            if let Some(r) = read(i, &dp.fast_probed[i]) {
                inputs[i] = ProbeInput::Watch(r);
            }
        }
    }
    inputs
}

/// Whether the trial budget of one of `trials` (watched interfaces) is
/// spent: its frame redirected, the answer can be read now rather than at
/// the next [`PROBE_INTERVAL`].
pub(super) fn trial_spent(dp: &DpShared, trials: &[u32]) -> bool {
    let filter = dp.filter();
    let Some(Filter::Xdp(c)) = &*filter else {
        return false;
    };
    trials.iter().any(|&i| {
        matches!(
            c.flow_cache().watch_counts(i),
            Ok(Some(w)) if w.budget_left.is_some_and(|b| b <= 0)
        )
    })
}

/// How often the sync thread looks whether a trial's frame went
/// ([`trial_spent`]).
pub(super) const TRIAL_CHECK_INTERVAL: Duration = Duration::from_millis(5);

/// How long [`probe_inputs`] waits before reading a veth's counters again.
const WATCH_SETTLE: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_flip_after_two_in_a_row() {
        let mut st = ProbeState::new(true);
        // One "no" (a probe lost among a busy peer's traffic): no change.
        assert_eq!(st.observe(Some(false)), None);
        assert_eq!(st.observe(Some(true)), None);
        assert_eq!(st.observe(Some(false)), None);
        // A failed probe tells nothing: neither flips nor resets.
        assert_eq!(st.observe(None), None);
        assert_eq!(st.observe(Some(false)), Some(false));
        assert!(!st.takes);
        // And back, again after two in a row.
        assert_eq!(st.observe(Some(true)), None);
        assert_eq!(st.observe(Some(true)), Some(true));
        assert_eq!(st.observe(Some(true)), None);
        // Alternating answers never flip it.
        let mut st = ProbeState::new(false);
        for i in 0..10 {
            assert_eq!(st.observe(Some(i % 2 == 0)), None, "probe {i}");
        }
        assert!(!st.takes);
    }
}
