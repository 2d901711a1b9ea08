//! `rvs top`: a live view of rvsd in the terminal, refreshed every second:
//! the services with their rates (the kernel-style 2 s estimates rvsd keeps,
//! as `ipvsadm -L --rate` shows them), active and inactive connections and a
//! small history of their incoming packets; the selected service's real
//! servers; the data plane's workers, classifier, SYN guard and table.
//!
//! Keys: `↑`/`↓` (or `k`/`j`) select a service, `s` changes the sort
//! (incoming packets, connections a second, active connections, name), `q`
//! or `Esc` quits. `rvs top --once` prints one frame as text (scripts,
//! tests) and exits. It talks to the rvsd of `RVS_SOCKET` or the network
//! namespace's default endpoint, so `ip netns exec NS rvs top` works.
//!
//! The model ([`Top`]) and the drawing are separate from the terminal, so a
//! frame can be drawn into ratatui's test backend and checked as text.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{
    ClassifierCounters, DataPlaneWorker, EngineCounters, Proto, Reply, Request, ServiceId,
    ServiceInfo,
};

/// Samples of history kept per service (one a refresh).
const HISTORY: usize = 120;

/// How the services are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Incoming packets a second, highest first.
    #[default]
    InPps,
    /// New connections a second, highest first.
    Cps,
    /// Active connections, highest first.
    Active,
    /// The service's name, as `ipvsadm -L -n` would print it.
    Name,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::InPps => Sort::Cps,
            Sort::Cps => Sort::Active,
            Sort::Active => Sort::Name,
            Sort::Name => Sort::InPps,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::InPps => "in pkt/s",
            Sort::Cps => "conn/s",
            Sort::Active => "active",
            Sort::Name => "name",
        }
    }
}

/// The data plane as one refresh saw it.
#[derive(Debug, Clone, Default)]
pub struct DataPlane {
    /// Packet I/O mode.
    pub mode: String,
    /// Per-worker counters (cumulative).
    pub workers: Vec<DataPlaneWorker>,
    /// The classifier's counters.
    pub classifier: Option<ClassifierCounters>,
    /// The engine's counters.
    pub engine: Option<EngineCounters>,
    /// Why the filter is out of step, if it is.
    pub out_of_step: Option<String>,
}

/// What the view shows, fed by [`Top::update`].
#[derive(Debug, Default)]
pub struct Top {
    services: Vec<ServiceInfo>,
    history: HashMap<String, VecDeque<u64>>,
    dp: DataPlane,
    /// Forwarded frames a second per worker, from the last two refreshes.
    worker_rates: Vec<u64>,
    last_dp: Option<(Instant, Vec<u64>)>,
    selected: usize,
    sort: Sort,
    error: Option<String>,
}

/// A service's name as `ipvsadm -L -n` prints it.
pub fn service_name(id: &ServiceId) -> String {
    match id {
        ServiceId::Addr { proto, addr, port } => {
            let p = match proto {
                Proto::Tcp => "TCP",
                Proto::Udp => "UDP",
                Proto::Sctp => "SCTP",
            };
            match addr {
                std::net::IpAddr::V4(a) => format!("{p}  {a}:{port}"),
                std::net::IpAddr::V6(a) => format!("{p}  [{a}]:{port}"),
            }
        }
        ServiceId::Fwmark { mark, v6 } => {
            if *v6 {
                format!("FWM  {mark} IPv6")
            } else {
                format!("FWM  {mark}")
            }
        }
    }
}

/// `1234567` as `1.2M`, `12345` as `12.3K`, below 10000 as is.
fn short(n: u64) -> String {
    if n >= 10_000_000_000 {
        format!("{:.1}G", n as f64 / 1e9)
    } else if n >= 10_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("{:.1}K", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

impl Top {
    /// Take a refresh: the services, the data plane, when.
    pub fn update(&mut self, services: Vec<ServiceInfo>, dp: DataPlane, now: Instant) {
        let names: Vec<String> = services.iter().map(|s| service_name(&s.spec.id)).collect();
        for (s, name) in services.iter().zip(&names) {
            let h = self.history.entry(name.clone()).or_default();
            h.push_back(s.rates.inpps);
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        self.history.retain(|k, _| names.contains(k));
        let fwd: Vec<u64> = dp.workers.iter().map(|w| w.forwarded).collect();
        self.worker_rates = match &self.last_dp {
            Some((t, before)) if before.len() == fwd.len() => {
                let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                fwd.iter()
                    .zip(before)
                    .map(|(a, b)| (a.saturating_sub(*b) as f64 / secs) as u64)
                    .collect()
            }
            _ => vec![0; fwd.len()],
        };
        self.last_dp = Some((now, fwd));
        self.services = services;
        self.dp = dp;
        self.error = None;
        self.sort_services();
        self.selected = self.selected.min(self.services.len().saturating_sub(1));
    }

    /// A refresh failed (rvsd gone, refused): shown on the view.
    pub fn failed(&mut self, why: String) {
        self.error = Some(why);
    }

    fn sort_services(&mut self) {
        let active = |s: &ServiceInfo| s.dests.iter().map(|d| u64::from(d.active)).sum::<u64>();
        match self.sort {
            Sort::InPps => self
                .services
                .sort_by_key(|s| std::cmp::Reverse(s.rates.inpps)),
            Sort::Cps => self
                .services
                .sort_by_key(|s| std::cmp::Reverse(s.rates.cps)),
            Sort::Active => self.services.sort_by_key(|s| std::cmp::Reverse(active(s))),
            Sort::Name => self.services.sort_by_key(|s| service_name(&s.spec.id)),
        }
    }

    /// A key: whether to quit.
    pub fn key(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return true,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') if self.selected + 1 < self.services.len() => {
                self.selected += 1;
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.sort_services();
            }
            _ => {}
        }
        false
    }

    /// Draw the whole view into `f`.
    pub fn draw(&self, f: &mut ratatui::Frame) {
        let area = f.area();
        let [head, svcs, graph, dests, dp] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(5),
            Constraint::Length(4),
            Constraint::Min(4),
            Constraint::Length(6),
        ])
        .areas(area);

        let mut head_lines = vec![Line::from(format!(
            "rvs top — packet I/O: {} — {} service(s) — sort: {} (s) — q quits",
            if self.dp.mode.is_empty() {
                "?"
            } else {
                &self.dp.mode
            },
            self.services.len(),
            self.sort.label()
        ))];
        head_lines.push(match (&self.error, &self.dp.out_of_step) {
            (Some(e), _) => Line::from(format!("no answer from rvsd: {e}")),
            (None, Some(why)) => Line::from(format!("filter OUT OF STEP: {why}")),
            (None, None) => match &self.dp.engine {
                Some(e) => Line::from(format!(
                    "connections {} of {}, table full {} times, SYN_RECV evicted {}",
                    e.conns, e.max_conns, e.table_full, e.evicted_syn_recv
                )),
                None => Line::from(""),
            },
        });
        f.render_widget(Paragraph::new(head_lines), head);

        let rows = self.services.iter().enumerate().map(|(i, s)| {
            let active: u64 = s.dests.iter().map(|d| u64::from(d.active)).sum();
            let inactive: u64 = s.dests.iter().map(|d| u64::from(d.inactive)).sum();
            let row = Row::new(vec![
                service_name(&s.spec.id),
                s.spec.scheduler.clone(),
                short(s.rates.cps),
                short(s.rates.inpps),
                short(s.rates.outpps),
                short(s.rates.inbps),
                short(s.rates.outbps),
                active.to_string(),
                inactive.to_string(),
                s.dests.len().to_string(),
            ]);
            if i == self.selected {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        });
        let table = Table::new(
            rows,
            [
                Constraint::Min(24),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(4),
            ],
        )
        .header(
            Row::new(vec![
                "Service",
                "Sched",
                "Conn/s",
                "InPkt/s",
                "OutPkt/s",
                "InByte/s",
                "OutByte/s",
                "Active",
                "InAct",
                "RS",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::TOP).title("services"));
        f.render_widget(table, svcs);

        let selected = self.services.get(self.selected);
        let name = selected
            .map(|s| service_name(&s.spec.id))
            .unwrap_or_default();
        let data: Vec<u64> = self
            .history
            .get(&name)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default();
        f.render_widget(
            Sparkline::default()
                .block(
                    Block::default()
                        .borders(Borders::TOP)
                        .title(format!("{name}: incoming packets/s, last {} s", data.len())),
                )
                .data(&data),
            graph,
        );

        let drows = selected.into_iter().flat_map(|s| {
            s.dests.iter().map(|d| {
                let addr = match d.spec.addr {
                    std::net::IpAddr::V4(a) => format!("{a}:{}", d.spec.port),
                    std::net::IpAddr::V6(a) => format!("[{a}]:{}", d.spec.port),
                };
                Row::new(vec![
                    addr,
                    format!("{:?}", d.spec.fwd),
                    d.spec.weight.to_string(),
                    d.active.to_string(),
                    d.inactive.to_string(),
                    short(d.rates.cps),
                    short(d.rates.inpps),
                    short(d.rates.outpps),
                ])
            })
        });
        f.render_widget(
            Table::new(
                drows,
                [
                    Constraint::Min(24),
                    Constraint::Length(8),
                    Constraint::Length(7),
                    Constraint::Length(8),
                    Constraint::Length(8),
                    Constraint::Length(8),
                    Constraint::Length(9),
                    Constraint::Length(9),
                ],
            )
            .header(
                Row::new(vec![
                    "Real server",
                    "Forward",
                    "Weight",
                    "Active",
                    "InAct",
                    "Conn/s",
                    "InPkt/s",
                    "OutPkt/s",
                ])
                .style(Style::default().add_modifier(Modifier::BOLD)),
            )
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(format!("real servers of {name} (↑/↓)")),
            ),
            dests,
        );

        let mut dp_lines: Vec<Line> = self
            .dp
            .workers
            .iter()
            .zip(self.worker_rates.iter().chain(std::iter::repeat(&0)))
            .map(|(w, rate)| {
                Line::from(format!(
                    "worker {}: forwarded {}/s (total rx {}, tx {}, dropped {}, kernel drops {})",
                    w.worker,
                    short(*rate),
                    short(w.rx),
                    short(w.tx),
                    short(w.dropped),
                    short(w.kernel_drops)
                ))
            })
            .collect();
        if let Some(c) = &self.dp.classifier {
            dp_lines.push(Line::from(format!(
                "classifier: redirected {}, passed {}; SYN guard: {} shed of {} SYNs, shedding {:.1}% now",
                short(c.redirected),
                short(c.passed),
                short(c.syn_shed),
                short(c.syns),
                f64::from(c.syn_shed_permille) / 10.0
            )));
        }
        if dp_lines.is_empty() {
            dp_lines.push(Line::from("no data-plane worker (rvsd --io none)"));
        }
        f.render_widget(
            Paragraph::new(dp_lines)
                .block(Block::default().borders(Borders::TOP).title("data plane")),
            dp,
        );
    }

    /// One frame as text, `width` × `height`.
    pub fn render_text(&self, width: u16, height: u16) -> String {
        let mut t = match Terminal::new(TestBackend::new(width, height)) {
            Ok(t) => t,
            Err(_) => return String::new(),
        };
        let _ = t.draw(|f| self.draw(f));
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            let mut line = String::new();
            for x in 0..buf.area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// One refresh from rvsd.
fn fetch(c: &mut Client) -> Result<(Vec<ServiceInfo>, DataPlane), String> {
    let services = match c.call(Request::ListServices)? {
        Reply::Services(s) => s,
        Reply::Error(e) => return Err(format!("{} (errno {})", e.message, e.errno)),
        _ => return Err("unexpected reply".into()),
    };
    let dp = match c.call(Request::DataPlaneStats)? {
        Reply::DataPlaneStats {
            mode,
            workers,
            classifier,
            engine,
            filter_out_of_step,
            ..
        } => DataPlane {
            mode,
            workers,
            classifier,
            engine: engine.map(|e| *e),
            out_of_step: filter_out_of_step,
        },
        Reply::Error(e) => return Err(format!("{} (errno {})", e.message, e.errno)),
        _ => return Err("unexpected reply".into()),
    };
    Ok((services, dp))
}

/// `rvs top [--once]`.
pub fn run(once: bool) -> Result<(), String> {
    let ep = Endpoint::from_env();
    let mut c = Client::connect(&ep)
        .map_err(|e| format!("no rvsd answers on {ep} ({e}); start it with `rvsd &`"))?;
    let mut top = Top::default();
    let (services, dp) = fetch(&mut c)?;
    top.update(services, dp, Instant::now());
    if once {
        print!("{}", top.render_text(120, 40));
        return Ok(());
    }
    let mut terminal = ratatui::init();
    let result = (|| -> Result<(), String> {
        let mut next = Instant::now() + Duration::from_secs(1);
        loop {
            terminal
                .draw(|f| top.draw(f))
                .map_err(|e| format!("terminal: {e}"))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait).map_err(|e| format!("terminal: {e}"))? {
                if let Event::Key(k) = event::read().map_err(|e| format!("terminal: {e}"))?
                    && k.kind == KeyEventKind::Press
                    && top.key(k.code)
                {
                    return Ok(());
                }
                continue;
            }
            next = Instant::now() + Duration::from_secs(1);
            match fetch(&mut c) {
                Ok((s, d)) => top.update(s, d, Instant::now()),
                Err(e) => {
                    top.failed(e);
                    if let Ok(nc) = Client::connect(&ep) {
                        c = nc;
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_proto::{DestInfo, DestSpec, Fwd, Rates, ServiceSpec, Stats, TunnelSpec};

    fn svc(port: u16, inpps: u64, dests: &[(&str, u32)]) -> ServiceInfo {
        ServiceInfo {
            spec: ServiceSpec {
                id: ServiceId::Addr {
                    proto: Proto::Tcp,
                    addr: "10.0.0.100".parse().unwrap(),
                    port,
                },
                scheduler: "rr".into(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe: None,
            },
            stats: Stats::default(),
            rates: Rates {
                inpps,
                cps: inpps / 10,
                ..Rates::default()
            },
            dests: dests
                .iter()
                .map(|(a, active)| DestInfo {
                    spec: DestSpec {
                        addr: a.parse().unwrap(),
                        port,
                        fwd: Fwd::Route,
                        weight: 1,
                        u_threshold: 0,
                        l_threshold: 0,
                        tunnel: TunnelSpec::default(),
                    },
                    active: *active,
                    inactive: 0,
                    persist: 0,
                    stats: Stats::default(),
                    rates: Rates::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_frame_shows_services_real_servers_and_the_data_plane() {
        let mut t = Top::default();
        let now = Instant::now();
        let dp = DataPlane {
            mode: "xdp".into(),
            workers: vec![DataPlaneWorker {
                worker: 0,
                forwarded: 1000,
                ..DataPlaneWorker::default()
            }],
            ..DataPlane::default()
        };
        t.update(
            vec![
                svc(80, 12_345, &[("10.0.0.11", 3), ("10.0.0.12", 4)]),
                svc(443, 7, &[("10.0.0.13", 0)]),
            ],
            dp.clone(),
            now,
        );
        let mut dp2 = dp;
        dp2.workers[0].forwarded = 3000;
        t.update(
            vec![
                svc(80, 12_345, &[("10.0.0.11", 3), ("10.0.0.12", 4)]),
                svc(443, 7, &[("10.0.0.13", 0)]),
            ],
            dp2,
            now + Duration::from_secs(2),
        );
        let text = t.render_text(120, 40);
        assert!(text.contains("packet I/O: xdp — 2 service(s)"), "{text}");
        assert!(text.contains("TCP  10.0.0.100:80"), "{text}");
        assert!(text.contains("12.3K"), "{text}");
        assert!(text.contains("10.0.0.12:80"), "{text}");
        assert!(text.contains("worker 0: forwarded 1000/s"), "{text}");
        // Sorted by incoming packets: :80 first and selected; down selects :443.
        assert!(!t.key(KeyCode::Down));
        let text = t.render_text(120, 40);
        assert!(
            text.contains("real servers of TCP  10.0.0.100:443"),
            "{text}"
        );
        // Sort by name keeps both; q quits.
        t.key(KeyCode::Char('s'));
        assert!(t.key(KeyCode::Char('q')));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(9999), "9999");
        assert_eq!(short(12_345), "12.3K");
        assert_eq!(short(12_345_678), "12.3M");
    }
}
