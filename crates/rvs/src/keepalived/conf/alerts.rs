// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's e-mail alerts (`smtp_alert`): the `global_defs` settings
//! (`router_id`, `notification_email`, `notification_email_from`,
//! `smtp_server`, `smtp_helo_name`, `smtp_connect_timeout`, `smtp_alert`,
//! `smtp_alert_checker`, `no_checker_emails`) and which virtual and real
//! servers send them, with keepalived's defaults (global_data.c,
//! check_data.c): a virtual server's `smtp_alert` defaults to the global
//! `smtp_alert_checker`, else `smtp_alert`, else off; a real server's the
//! same but on at the end. Nothing is sent without `smtp_server` and a
//! `notification_email` address.

use std::time::Duration;

use super::*;
use crate::keepalived::lex::{ConfError, Node, err_at};

/// keepalived's `DEFAULT_SMTP_CONNECTION_TIMEOUT`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Smtp {
    /// `smtp_server HOST [PORT]` (port 25 unless given); `None`: no
    /// alerts.
    pub server: Option<(String, u16)>,
    /// `smtp_helo_name` (default: this host's name).
    pub helo: String,
    /// `notification_email_from` (default: `USER@HOST`).
    pub from: String,
    /// `notification_email { … }`.
    pub to: Vec<String>,
    /// `smtp_connect_timeout` (default 30 s): the whole exchange.
    pub timeout: Duration,
    /// `router_id` (default: this host's name), the subjects' `[…]`.
    pub router_id: String,
    /// `no_checker_emails`: a checker's change alerts only when its real
    /// server's changes too.
    pub no_checker_emails: bool,
}

impl Smtp {
    /// Whether alerts can be sent at all.
    pub fn enabled(&self) -> bool {
        self.server.is_some() && !self.to.is_empty()
    }
}

/// This host's name (`uname -n`, as keepalived's `get_local_name` starts
/// from); `localhost` if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The alert settings of every `global_defs` block, and the global
/// `smtp_alert` / `smtp_alert_checker` (`None`: not given).
pub(super) fn global(
    tree: &[Node],
    warnings: &mut Vec<String>,
) -> Result<(Smtp, Option<bool>, Option<bool>), ConfError> {
    let mut s = Smtp {
        timeout: DEFAULT_TIMEOUT,
        ..Smtp::default()
    };
    let (mut helo, mut from, mut router_id) = (None, None, None);
    let (mut alert, mut alert_checker) = (None, None);
    for n in tree.iter().filter(|n| n.key == "global_defs") {
        for c in block(n)? {
            match c.key.as_str() {
                "router_id" => router_id = Some(value(c)?.to_string()),
                "notification_email_from" => from = Some(value(c)?.to_string()),
                "smtp_helo_name" => helo = Some(value(c)?.to_string()),
                "smtp_server" => {
                    no_block(c)?;
                    let port = match c.args.get(1) {
                        Some(p) => port(&c.pos, p)?,
                        None => 25,
                    };
                    let host = c
                        .args
                        .first()
                        .ok_or_else(|| err_at(&c.pos, "'smtp_server' needs an address"))?;
                    s.server = Some((host.clone(), port));
                }
                "smtp_connect_timeout" => s.timeout = duration(c)?,
                "notification_email" => {
                    let addrs: Vec<String> = c
                        .block
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .flat_map(|a| std::iter::once(a.key.clone()).chain(a.args.clone()))
                        .collect();
                    if addrs.is_empty() {
                        warnings.push(format!(
                            "{}: Warning - empty notification_email block",
                            c.pos
                        ));
                    }
                    s.to.extend(addrs);
                }
                "smtp_alert" => alert = Some(flag(c)?),
                "smtp_alert_checker" => alert_checker = Some(flag(c)?),
                "no_checker_emails" => s.no_checker_emails = flag(c)?,
                _ => {}
            }
        }
    }
    let host = host_name();
    s.router_id = router_id.unwrap_or_else(|| host.clone());
    s.helo = helo.unwrap_or_else(|| host.clone());
    s.from = from.unwrap_or_else(|| {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| "root".to_string(), |u| u.name);
        format!("{user}@{host}")
    });
    Ok((s, alert, alert_checker))
}

/// keepalived's defaults for the `smtp_alert` of every virtual server
/// (off) and real server (on) that does not set its own.
pub(super) fn resolve(
    services: &mut [VirtualServer],
    alert: Option<bool>,
    alert_checker: Option<bool>,
) {
    let global = alert_checker.or(alert);
    for vs in services {
        vs.smtp_alert = Some(vs.smtp_alert.or(global).unwrap_or(false));
        for rs in &mut vs.reals {
            rs.smtp_alert = Some(rs.smtp_alert.or(global).unwrap_or(true));
        }
    }
}
