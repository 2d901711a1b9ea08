//! rvsd's log: `tracing` events, one line each, on stderr.
//!
//! * **Levels.** `error` (rvsd cannot do what it should: a start that fails,
//!   a table the data plane refused, a thread that panicked), `warn`
//!   (something is degraded or refused but rvsd goes on), `info` (start,
//!   stop, changes and the counters at stop: the default), `debug` (every
//!   control request).
//! * **Which.** `--log-level LEVEL` (`error`, `warn`, `info`, `debug`,
//!   `trace`, `off`) wins; without it `$RUST_LOG` (tracing-subscriber's
//!   `EnvFilter` syntax, e.g. `debug` or `info,rvsd::dataplane=debug`); else
//!   `info`. The flag wins because it is the more deliberate of the two: it
//!   is written in the unit's or the script's command line, while `RUST_LOG`
//!   is easily inherited from a shell. A `RUST_LOG` that does not parse is
//!   reported and `info` is used.
//! * **Format.** A plain line: `TIMESTAMP LEVEL rvsd: message key=value …`
//!   (RFC 3339 UTC; values with spaces quoted; a newline in a message is
//!   written `\n`, so that one event is one line). Under systemd —
//!   `$JOURNAL_STREAM` names the device and inode of stderr, as systemd sets
//!   it for a service whose stderr is the journal — the line is
//!   `<N>message key=value …` instead: no timestamp (the journal has its
//!   own), no `rvsd:` (the journal's identifier says it), and a syslog
//!   priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug)
//!   that journald's stream parses into the entry's PRIORITY, so
//!   `journalctl -p warning -u rvsd` works. A `$JOURNAL_STREAM` inherited by
//!   an rvsd whose stderr was redirected elsewhere does not match, and the
//!   plain format is used (as sd_journal_stream_fd(3) advises).
//! * **Repeated data-plane errors** (a socket that fails at every turn of a
//!   worker's loop) go through [`limited!`](crate::limited): the same event
//!   with the same key is logged at most once per [`REPEAT_INTERVAL`]; the
//!   next one logged carries `suppressed=N`, how many were left out.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The values `--log-level` takes.
pub const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A `--log-level`: one of [`LEVELS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(u8);

impl LogLevel {
    /// `name` if it is one of [`LEVELS`].
    pub fn parse(name: &str) -> Option<LogLevel> {
        LEVELS
            .iter()
            .position(|l| *l == name)
            .map(|i| LogLevel(i as u8))
    }

    /// Its name, as given.
    pub fn name(self) -> &'static str {
        LEVELS[usize::from(self.0)]
    }
}

/// The level without `--log-level` and `$RUST_LOG`.
pub const DEFAULT_LEVEL: &str = "info";

/// How often a rate-limited event ([`limited!`](crate::limited)) is logged
/// at most, per key.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The keys a [`RateLimiter`] tracks at most (the oldest is forgotten).
const MAX_KEYS: usize = 256;

/// Which format: plain lines or journald's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `TIMESTAMP LEVEL rvsd: message fields`.
    Plain,
    /// `<N>message fields`.
    Journald,
}

impl Format {
    /// [`Format::Journald`] if `journal_stream` (`$JOURNAL_STREAM`,
    /// `DEVICE:INODE`) names `stderr` (its device and inode), else plain.
    pub fn detect(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> Format {
        let named = journal_stream.and_then(|v| {
            let (dev, ino) = v.split_once(':')?;
            Some((
                dev.trim().parse::<u64>().ok()?,
                ino.trim().parse::<u64>().ok()?,
            ))
        });
        match (named, stderr) {
            (Some(n), Some(s)) if n == s => Format::Journald,
            _ => Format::Plain,
        }
    }
}

/// The filter: `flag` (`--log-level`) wins, else `rust_log` (`$RUST_LOG`),
/// else [`DEFAULT_LEVEL`]; the second value is a warning to log (a
/// `$RUST_LOG` that does not parse).
pub fn filter(flag: Option<&str>, rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    if let Some(level) = flag {
        return (EnvFilter::new(level), None);
    }
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (EnvFilter::new(DEFAULT_LEVEL), None),
        Some(v) => match EnvFilter::builder().parse(v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_LEVEL),
                Some(format!(
                    "RUST_LOG={v:?} ignored ({e}); logging at {DEFAULT_LEVEL}"
                )),
            ),
        },
    }
}

/// Install the log for the process: stderr, filtered by `flag` or
/// `$RUST_LOG`, in the format [`Format::detect`] picks. Once; later calls
/// do nothing.
pub fn init(flag: Option<&str>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, warning) = filter(flag, rust_log.as_deref());
    // dev_t and ino_t are u64 on some architectures only.
    #[allow(clippy::unnecessary_cast)]
    let stderr = rustix::fs::fstat(std::io::stderr())
        .ok()
        .map(|st| (st.st_dev as u64, st.st_ino as u64));
    let format = Format::detect(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr);
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Line { format })
        .try_init()
        .is_ok();
    if installed && let Some(w) = warning {
        tracing::warn!("{w}");
    }
}

/// rvsd's line format (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// Plain or journald's.
    pub format: Format,
}

/// The syslog priority of `level`, as journald reads it from `<N>`.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        match self.format {
            Format::Journald => write!(w, "<{}>", syslog_priority(level))?,
            Format::Plain => {
                SystemTime.format_time(&mut w)?;
                write!(w, " {level:>5} rvsd: ")?;
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        w.write_str(&fields.line())?;
        w.write_char('\n')
    }
}

/// An event's message and its other fields, as one line.
#[derive(Debug, Default)]
pub struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    /// `message key=value …`, without newlines.
    pub fn line(&self) -> String {
        let mut s = one_line(&self.message);
        if !self.rest.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&self.rest);
        }
        s
    }

    fn field(&mut self, name: &str, value: &str) {
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        self.rest.push_str(name);
        self.rest.push('=');
        if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
            let _ = write!(self.rest, "{value:?}");
        } else {
            self.rest.push_str(value);
        }
    }
}

/// `s` with its newlines written `\n`.
fn one_line(s: &str) -> String {
    s.trim_end_matches('\n').replace('\n', "\\n")
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.field(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.field(field.name(), &text);
        }
    }
}

/// At most one event per interval for each key: [`RateLimiter::admit`]
/// says whether to log this one and how many were left out since the last
/// one logged.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// Key, when it was last logged, how many were left out since.
    keys: Vec<(String, Instant, u64)>,
}

impl RateLimiter {
    /// One event per key every `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimiter {
            interval,
            keys: Vec::new(),
        }
    }

    /// `Some(left_out)` if the event keyed `key` is to be logged at `now`
    /// (`left_out`: the events of that key suppressed since the last one
    /// logged), `None` if it is to be left out (and counted).
    pub fn admit(&mut self, key: &str, now: Instant) -> Option<u64> {
        if let Some(e) = self.keys.iter_mut().find(|e| e.0 == key) {
            if now.saturating_duration_since(e.1) < self.interval {
                e.2 += 1;
                return None;
            }
            let left_out = e.2;
            e.1 = now;
            e.2 = 0;
            return Some(left_out);
        }
        if self.keys.len() >= MAX_KEYS {
            // Forget the key logged longest ago.
            if let Some(i) = (0..self.keys.len()).min_by_key(|&i| self.keys[i].1) {
                self.keys.swap_remove(i);
            }
        }
        self.keys.push((key.to_string(), now, 0));
        Some(0)
    }
}

/// A `tracing` event at `$level` (`error`, `warn`, …) logged at most once
/// per [`REPEAT_INTERVAL`] for each `$key` (any `Display`: an interface, a
/// worker) at this call site; the next one logged after some were left out
/// carries `suppressed=N`. For errors that can repeat at packet rate.
///
/// `limited!(warn, key, field = value, "message {}", arg)`.
#[macro_export]
macro_rules! limited {
    ($level:ident, $key:expr, $($rest:tt)+) => {{
        static LIMITER: std::sync::Mutex<$crate::log::RateLimiter> =
            std::sync::Mutex::new($crate::log::RateLimiter::new($crate::log::REPEAT_INTERVAL));
        let key = ::std::string::ToString::to_string(&$key);
        let admitted = LIMITER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&key, std::time::Instant::now());
        if let Some(n) = admitted {
            let suppressed = (n > 0).then_some(n);
            tracing::$level!(suppressed, $($rest)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_one_per_interval_then_counts() {
        let mut r = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.admit("eth0", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(r.admit("eth0", t0 + Duration::from_secs(i)), None);
        }
        // Another key is not held back by the first.
        assert_eq!(r.admit("eth1", t0 + Duration::from_secs(1)), Some(0));
        // The interval over: logged, with the count left out.
        assert_eq!(r.admit("eth0", t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(r.admit("eth0", t0 + Duration::from_secs(11)), None);
        assert_eq!(r.admit("eth0", t0 + Duration::from_secs(25)), Some(1));
        assert_eq!(r.admit("eth0", t0 + Duration::from_secs(40)), Some(0));
    }

    #[test]
    fn rate_limiter_is_bounded() {
        let mut r = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            assert_eq!(r.admit(&i.to_string(), t0), Some(0));
        }
        assert_eq!(r.keys.len(), MAX_KEYS);
    }

    #[test]
    fn journald_only_when_the_stream_is_stderr() {
        assert_eq!(Format::detect(None, Some((1, 2))), Format::Plain);
        assert_eq!(Format::detect(Some("1:2"), Some((1, 2))), Format::Journald);
        assert_eq!(Format::detect(Some("1:3"), Some((1, 2))), Format::Plain);
        assert_eq!(Format::detect(Some("1:2"), None), Format::Plain);
        assert_eq!(Format::detect(Some("x"), Some((1, 2))), Format::Plain);
    }

    #[test]
    fn flag_wins_over_rust_log() {
        let f = |flag, env| filter(flag, env).0.max_level_hint();
        use tracing_subscriber::filter::LevelFilter;
        assert_eq!(f(None, None), Some(LevelFilter::INFO));
        assert_eq!(f(None, Some("debug")), Some(LevelFilter::DEBUG));
        assert_eq!(f(Some("warn"), Some("debug")), Some(LevelFilter::WARN));
        let (bad, warning) = filter(None, Some("rvsd=notalevel"));
        assert_eq!(bad.max_level_hint(), Some(LevelFilter::INFO));
        assert!(warning.unwrap().contains("RUST_LOG"));
    }

    #[test]
    fn fields_on_one_line() {
        let mut f = Fields {
            message: "a\nb\n".into(),
            ..Fields::default()
        };
        f.field("iface", "eth0");
        f.field("reason", "no room");
        f.field("empty", "");
        assert_eq!(f.line(), r#"a\nb iface=eth0 reason="no room" empty="""#);
    }

    /// A writer into a shared buffer, for a subscriber under test.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f` logs through rvsd's formatter in `format`, at debug.
    fn captured(format: Format, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(move || out.clone())
            .event_format(Line { format })
            .finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn limited_logs_a_repeated_event_once_per_key() {
        let log = captured(Format::Plain, || {
            for i in 0..100 {
                crate::limited!(
                    warn,
                    i % 2,
                    iface = "eth0",
                    "worker {}: receive failed",
                    i % 2
                );
            }
        });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].ends_with(" WARN rvsd: worker 0: receive failed iface=eth0"));
        assert!(lines[1].ends_with(" WARN rvsd: worker 1: receive failed iface=eth0"));
        // The count rides on the next line logged.
        let log = captured(Format::Plain, || {
            tracing::warn!(suppressed = Some(98u64), "worker 0: receive failed")
        });
        assert!(
            log.ends_with("rvsd: worker 0: receive failed suppressed=98\n"),
            "{log}"
        );
    }

    #[test]
    fn plain_and_journald_lines() {
        let log = captured(Format::Plain, || {
            tracing::info!(iface = "eth0", "interfaces: {}", "eth0");
            tracing::debug!(request = "info", "control request");
        });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        // 2026-12-06T18:36:42.351038Z  INFO rvsd: interfaces: eth0 iface=eth0
        let (ts, rest) = lines[0].split_once(' ').unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
        assert_eq!(rest, " INFO rvsd: interfaces: eth0 iface=eth0");
        assert!(lines[1].ends_with("DEBUG rvsd: control request request=info"));
        let log = captured(Format::Journald, || {
            tracing::error!("e");
            tracing::warn!(reason = "no room", "w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        assert_eq!(log, "<3>e\n<4>w reason=\"no room\"\n<6>i\n<7>d\n");
    }
}
