//! `rvs proc …`: rvsd's tables in the kernel's `/proc/net/ip_vs*` formats,
//! for tools written against those files.

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Reply, Request};
use rvsadm::format;

fn call(c: &mut Client, r: Request) -> Result<Reply, String> {
    match c.call(r)? {
        Reply::Error(e) => Err(format!("rvsd: {} (errno {})", e.message, e.errno)),
        other => Ok(other),
    }
}

/// The dump named `what` (`ip_vs`, `ip_vs_conn`, `ip_vs_stats`).
pub fn dump(what: &str) -> Result<String, String> {
    let ep = Endpoint::from_env();
    let mut c = Client::connect(&ep)
        .map_err(|e| format!("no rvsd answers on {ep} ({e}); start it with `rvsd &`"))?;
    match what {
        "ip_vs" => {
            let Reply::Info {
                version,
                conn_tab_size,
            } = call(&mut c, Request::Info)?
            else {
                return Err("unexpected reply".into());
            };
            let Reply::Services(s) = call(&mut c, Request::ListServices)? else {
                return Err("unexpected reply".into());
            };
            Ok(format::proc_ip_vs(version, conn_tab_size, &s))
        }
        "ip_vs_conn" => Ok(format::proc_ip_vs_conn(&c.list_conns_all()?)),
        "ip_vs_conn_sync" => Ok(format::proc_ip_vs_conn_sync(&c.list_conns_all()?)),
        "ip_vs_stats" => {
            let Reply::GlobalStats { stats, rates } = call(&mut c, Request::GlobalStats)? else {
                return Err("unexpected reply".into());
            };
            Ok(format::proc_ip_vs_stats(&stats, &rates))
        }
        other => Err(format!(
            "unknown table '{other}': expected ip_vs, ip_vs_conn, ip_vs_conn_sync or ip_vs_stats"
        )),
    }
}
