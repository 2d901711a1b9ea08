//! `rvs bench control`: how the control plane scales with the rule set.
//!
//! Starts a private rvsd (its own abstract socket, so it never meets an
//! operator's daemon), then times what operators do with large tables, each
//! as a whole `rvsadm` process as a script would run it:
//! restore of S services × D real servers from a file, `-S -n`, `-L -n`, and
//! one more `-a` on the full table. Prints one line per step.

use super::Row;
use crate::child::sibling;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `rvs bench control`.
#[derive(Debug, Clone)]
pub struct ControlOpts {
    /// Number of virtual services.
    pub services: u32,
    /// Real servers per service.
    pub dests: u32,
    /// Repetitions of each timed step (the median is reported).
    pub repeat: u32,
}

/// The rules text: `services` TCP services with `dests` NAT real servers each.
pub fn rules(services: u32, dests: u32) -> String {
    let mut s = String::with_capacity((services * (dests + 1) * 48) as usize);
    for i in 0..services {
        let vip = format!("10.{}.{}.{}:80", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        s.push_str(&format!("-A -t {vip} -s wrr\n"));
        for d in 0..dests {
            s.push_str(&format!(
                "-a -t {vip} -r 172.{}.{}.{}:8080 -m -w {}\n",
                16 + (d & 15),
                (i >> 8) & 255,
                i & 255,
                1 + d
            ));
        }
    }
    s
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        crate::child::stop(&mut self.0);
    }
}

fn adm(
    rvsadm: &Path,
    socket: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(rvsadm)
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("rvsadm: {e}"))?;
    if let Some(input) = stdin
        && let Some(mut w) = child.stdin.take()
    {
        w.write_all(input.as_bytes())
            .map_err(|e| format!("rvsadm stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "rvsadm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Run the control-plane bench; returns the report (the same text as ever)
/// and its rows (milliseconds, median).
pub fn run(o: &ControlOpts) -> Result<(String, Vec<Row>), String> {
    let rvsd = sibling("rvsd")?;
    let rvsadm = sibling("rvsadm")?;
    let socket = format!("@rvs-bench-{}", std::process::id());
    let child = Command::new(&rvsd)
        .args(["--socket", &socket, "--io", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("rvsd: {e}"))?;
    let _daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while adm(&rvsadm, &socket, &["-L", "-n"], None).is_err() {
        if Instant::now() > deadline {
            return Err("rvsd did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let text = rules(o.services, o.dests);
    let lines = o.services * (o.dests + 1);
    let mut restore = Vec::new();
    let mut save = Vec::new();
    let mut list = Vec::new();
    let mut add = Vec::new();
    // Baseline in the same run: an rvsadm process that does no work
    // (`-v`: start, print, exit), the fixed cost of every step.
    let mut baseline = Vec::new();
    for r in 0..o.repeat.max(1) {
        baseline.push(adm(&rvsadm, &socket, &["-v"], None)?);
        adm(&rvsadm, &socket, &["-C"], None)?;
        restore.push(adm(&rvsadm, &socket, &["-R"], Some(&text))?);
        save.push(adm(&rvsadm, &socket, &["-S", "-n"], None)?);
        list.push(adm(&rvsadm, &socket, &["-L", "-n"], None)?);
        let dest = format!("192.0.2.{}:8080", 1 + r % 250);
        add.push(adm(
            &rvsadm,
            &socket,
            &["-a", "-t", "10.0.0.0:80", "-r", &dest, "-m"],
            None,
        )?);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::new();
    out.push_str(&format!(
        "rvs bench control: {} services x {} real servers ({} lines), median of {} runs, \
         each step a whole rvsadm process\n",
        o.services,
        o.dests,
        lines,
        o.repeat.max(1)
    ));
    let base = ms(median(baseline));
    let mut rows = vec![Row::new("control", "process start (rvsadm -v)").with("ms", Some(base))];
    out.push_str(&format!(
        "  {:<22} {base:>9.1} ms   (baseline: rvsadm -v, no request)\n",
        "process start"
    ));
    for (name, v, target) in [
        ("restore (-R < file)", restore, 1000.0),
        ("save (-S -n)", save, 500.0),
        ("list (-L -n)", list, 500.0),
        ("one more -a", add, 5.0),
    ] {
        let m = ms(median(v));
        rows.push(
            Row::new("control", name)
                .with("ms", Some(m))
                .with("x_baseline", Some(m / base.max(1e-3)))
                .with("target_ms", Some(target)),
        );
        out.push_str(&format!(
            "  {name:<22} {m:>9.1} ms   {:>6.0}x baseline   target <= {target} ms  {}\n",
            m / base.max(1e-3),
            if m <= target { "met" } else { "NOT met" }
        ));
    }
    Ok((out, rows))
}
