//! `rvs realserver up|down`: prepare (and restore) a direct-routing or
//! tunnelling real server, as the seed's `lvs_rs_vip.sh` does.
//!
//! `up --vip ADDR [--vip ADDR…] [--tun] [--dev IF…] [--state FILE]`:
//!
//! * adds each VIP on `lo` as /32 (/128 for IPv6);
//! * sets `net.ipv4.conf.{all,lo}.arp_ignore=1` and
//!   `net.ipv4.conf.{all,lo}.arp_announce=2` (so the real server neither
//!   answers nor announces ARP for the VIPs: the director owns them);
//! * with `--tun`: sets `rp_filter=0` on `all` and on each receiving
//!   interface (decapsulated packets carry the client's source address), and
//!   attaches the XDP decapsulator (`rvs_io::decap`) to the interfaces
//!   (`--dev`, repeatable; default: every up, non-loopback interface). This
//!   kernel has no `ipip` module, so no `tunl0`: the XDP program strips the
//!   outer IPv4 or IPv6 header of IPv4-in-IP (protocol / next header 4) and
//!   IPv6-in-IP (41) packets whose inner destination is a VIP. It is attached through rtnetlink and
//!   stays attached after `rvs` exits.
//!
//! What `up` changed is recorded in a state file (JSON, default
//! `/run/rvs/realserver.json`): each sysctl with the value it had before,
//! each address it added (one that was already there is not recorded), each
//! interface and program id it attached. `down` undoes exactly that: it
//! restores those sysctl values, deletes those addresses, detaches those
//! programs (only if the interface still runs that very program), then
//! removes the state file. Running `up` again adds to the same record
//! (the first recorded previous value of a sysctl is kept).
//!
//! All input (addresses, interfaces, the sysctl files) is checked before
//! anything is changed; when a step fails, what this run had changed is
//! undone before the error is reported.
//!
//! Addresses are added and deleted with iproute2 (`ip addr`).

use std::{
    collections::BTreeSet,
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
};

use serde::{Deserialize, Serialize};

/// Default state file.
pub const DEFAULT_STATE: &str = "/run/rvs/realserver.json";

const CONF: &str = "/proc/sys/net/ipv4/conf";

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Opts {
    /// `up` (true) or `down`.
    pub up: bool,
    /// `--vip`.
    pub vips: Vec<IpAddr>,
    /// `--tun`.
    pub tun: bool,
    /// `--dev`.
    pub devs: Vec<String>,
    /// `--state`.
    pub state: PathBuf,
}

/// The record of what `up` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Sysctl file and the value it had before `up` changed it.
    sysctls: Vec<(String, String)>,
    /// Addresses `up` added on `lo`, as `ADDR/LEN`.
    addrs: Vec<String>,
    /// Every VIP given to `up` (the decapsulator's `vips` map).
    vips: Vec<IpAddr>,
    /// Decapsulators `up` attached.
    decap: Vec<Decap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Decap {
    iface: String,
    ifindex: u32,
    prog_id: u32,
}

/// Runs `up` or `down`; returns what to print.
///
/// # Errors
///
/// A message for the user.
pub fn run(o: &Opts) -> Result<String, String> {
    if o.up { up(o) } else { down(&o.state) }
}

fn prefix(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}/32"),
        IpAddr::V6(_) => format!("{a}/128"),
    }
}

fn load_state(path: &Path) -> Result<Option<State>, String> {
    match fs::read_to_string(path) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| format!("state file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("state file {}: {e}", path.display())),
    }
}

fn save_state(path: &Path, st: &State) -> Result<(), String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(st).map_err(|e| e.to_string())?;
    fs::write(&tmp, text + "\n").map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_sysctl(path: &str) -> Result<String, String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("{path}: {e}"))
}

fn write_sysctl(path: &str, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value} to {path}: {e}"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether `lo` has the address `p` (`ADDR/LEN`).
fn lo_has(p: &str) -> Result<bool, String> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -o addr show dev lo: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().any(|l| l.split_whitespace().any(|w| w == p)))
}

/// A valid interface name of the calling thread's network namespace.
fn check_iface(name: &str) -> Result<u32, String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return Err(format!("invalid interface name '{name}'"));
    }
    rvs_io::xdp::ifindex(name).map_err(|_| format!("unknown interface '{name}'"))
}

/// Every up, non-loopback interface (sysfs of the current namespace).
fn up_interfaces() -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let dir = fs::read_dir("/sys/class/net").map_err(|e| format!("/sys/class/net: {e}"))?;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(flags) = fs::read_to_string(entry.path().join("flags")) else {
            continue;
        };
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        const IFF_UP: u32 = 0x1;
        const IFF_LOOPBACK: u32 = 0x8;
        if flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn up(o: &Opts) -> Result<String, String> {
    if o.vips.is_empty() {
        return Err("realserver up needs at least one --vip ADDR".into());
    }
    if !o.tun && !o.devs.is_empty() {
        return Err("--dev only makes sense with --tun".into());
    }
    // Check everything before changing anything.
    check_iface("lo")?;
    let devs: Vec<String> = if !o.tun {
        Vec::new()
    } else if o.devs.is_empty() {
        let d = up_interfaces()?;
        if d.is_empty() {
            return Err(
                "--tun: no up, non-loopback interface to attach the decapsulator to; \
                        name one with --dev"
                    .into(),
            );
        }
        d
    } else {
        let mut d: Vec<String> = Vec::new();
        for dev in &o.devs {
            if dev == "lo" {
                return Err("--dev lo: the decapsulator goes on receiving interfaces".into());
            }
            check_iface(dev)?;
            if !d.contains(dev) {
                d.push(dev.clone());
            }
        }
        d
    };
    let mut sysctls: Vec<(String, &str)> = Vec::new();
    for (conf, key, value) in [
        ("all", "arp_ignore", "1"),
        ("lo", "arp_ignore", "1"),
        ("all", "arp_announce", "2"),
        ("lo", "arp_announce", "2"),
    ] {
        sysctls.push((format!("{CONF}/{conf}/{key}"), value));
    }
    if o.tun {
        sysctls.push((format!("{CONF}/all/rp_filter"), "0"));
        for d in &devs {
            sysctls.push((format!("{CONF}/{d}/rp_filter"), "0"));
        }
    }
    for (path, _) in &sysctls {
        read_sysctl(path)?;
    }
    let mut st = load_state(&o.state)?.unwrap_or_default();

    let mut done = Done::default();
    match apply(o, &devs, &sysctls, &mut st, &mut done) {
        Ok(report) => {
            save_state(&o.state, &st).map_err(|e| {
                let undo = done.undo();
                format!("{e}{undo}")
            })?;
            Ok(report)
        }
        Err(e) => {
            let undo = done.undo();
            Err(format!("{e}{undo}"))
        }
    }
}

/// What one `up` run changed, to undo it when a later step fails.
#[derive(Debug, Default)]
struct Done {
    sysctls: Vec<(String, String)>,
    addrs: Vec<String>,
    decap: Vec<(u32, u32)>,
}

impl Done {
    fn undo(&self) -> String {
        let mut errs = Vec::new();
        for (ifindex, prog) in &self.decap {
            if let Err(e) = rvs_io::decap::detach(*ifindex, *prog) {
                errs.push(e.to_string());
            }
        }
        for a in self.addrs.iter().rev() {
            if let Err(e) = ip(&["addr", "del", a, "dev", "lo"]) {
                errs.push(e);
            }
        }
        for (path, prev) in self.sysctls.iter().rev() {
            if let Err(e) = write_sysctl(path, prev) {
                errs.push(e);
            }
        }
        if errs.is_empty() {
            "\n(what this run had changed was undone)".into()
        } else {
            format!(
                "\nundoing this run's changes also failed: {}",
                errs.join("; ")
            )
        }
    }
}

fn apply(
    o: &Opts,
    devs: &[String],
    sysctls: &[(String, &str)],
    st: &mut State,
    done: &mut Done,
) -> Result<String, String> {
    let mut report = String::new();
    for (path, value) in sysctls {
        let cur = read_sysctl(path)?;
        if cur == *value {
            continue;
        }
        write_sysctl(path, value)?;
        done.sysctls.push((path.clone(), cur.clone()));
        if !st.sysctls.iter().any(|(p, _)| p == path) {
            st.sysctls.push((path.clone(), cur.clone()));
        }
        report.push_str(&format!("sysctl {path}: {cur} -> {value}\n"));
    }
    for vip in &o.vips {
        let p = prefix(vip);
        if !lo_has(&p)? {
            ip(&["addr", "add", &p, "dev", "lo"])?;
            done.addrs.push(p.clone());
            if !st.addrs.contains(&p) {
                st.addrs.push(p.clone());
            }
            report.push_str(&format!("added {p} on lo\n"));
        }
        if !st.vips.contains(vip) {
            st.vips.push(*vip);
        }
    }
    if o.tun {
        let vips: Vec<IpAddr> = st
            .vips
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for dev in devs {
            let ifindex = check_iface(dev)?;
            // Our own decapsulator from an earlier `up`: replace it, so its
            // VIP set is the union.
            if let Some(pos) = st
                .decap
                .iter()
                .position(|d| d.ifindex == ifindex && d.iface == *dev)
            {
                let old = st.decap[pos].prog_id;
                if rvs_io::decap::detach(ifindex, old).map_err(|e| e.to_string())? {
                    report.push_str(&format!("replacing the decapsulator on {dev}\n"));
                }
                st.decap.remove(pos);
            }
            let a = rvs_io::decap::attach(dev, &vips).map_err(|e| format!("--tun: {e}"))?;
            done.decap.push((a.ifindex, a.prog_id));
            st.decap.push(Decap {
                iface: a.iface.clone(),
                ifindex: a.ifindex,
                prog_id: a.prog_id,
            });
            report.push_str(&format!(
                "decapsulator (XDP program {}, {:?} mode) attached to {dev}\n",
                a.prog_id, a.mode
            ));
        }
    }
    if report.is_empty() {
        report.push_str("nothing to change: already up\n");
    }
    Ok(report)
}

fn down(state: &Path) -> Result<String, String> {
    let Some(st) = load_state(state)? else {
        return Ok(format!(
            "nothing to undo: no state file {} (realserver up was not run)\n",
            state.display()
        ));
    };
    let mut report = String::new();
    let mut errs = Vec::new();
    for d in &st.decap {
        match rvs_io::decap::detach(d.ifindex, d.prog_id) {
            Ok(true) => report.push_str(&format!("detached the decapsulator from {}\n", d.iface)),
            Ok(false) => report.push_str(&format!(
                "{}: the decapsulator is no longer attached; left alone\n",
                d.iface
            )),
            Err(e) => errs.push(format!("{}: {e}", d.iface)),
        }
    }
    for a in st.addrs.iter().rev() {
        match lo_has(a).and_then(|has| {
            if has {
                ip(&["addr", "del", a, "dev", "lo"]).map(|()| true)
            } else {
                Ok(false)
            }
        }) {
            Ok(true) => report.push_str(&format!("deleted {a} from lo\n")),
            Ok(false) => report.push_str(&format!("{a} was no longer on lo\n")),
            Err(e) => errs.push(e),
        }
    }
    for (path, prev) in st.sysctls.iter().rev() {
        if !Path::new(path).exists() {
            report.push_str(&format!("{path} is gone (interface removed); skipped\n"));
            continue;
        }
        match write_sysctl(path, prev) {
            Ok(()) => report.push_str(&format!("sysctl {path}: restored {prev}\n")),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        // Keep the state file: `down` can be run again.
        return Err(format!(
            "{report}could not undo everything (state kept in {}): {}",
            state.display(),
            errs.join("; ")
        ));
    }
    fs::remove_file(state).map_err(|e| format!("{}: {e}", state.display()))?;
    Ok(report)
}
