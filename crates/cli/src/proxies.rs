//! The chain of proxies for `connect` and `forward`: `-x URL` flags, or the environment.

use anyhow::{bail, Context};
use socksgate_client::{Chain, Hop};

/// Environment variables read when no `-x` is given, in this order (as curl reads
/// ALL_PROXY; SOCKS_PROXY and SOCKS5_PROXY as other SOCKS tools do). Each may hold one URL
/// or several separated by commas (a chain).
pub(crate) const ENVIRONMENT: [&str; 5] = [
    "SOCKSGATE_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "SOCKS_PROXY",
    "SOCKS5_PROXY",
];

pub(crate) fn chain(urls: &[String]) -> anyhow::Result<Chain> {
    let urls: Vec<String> = if urls.is_empty() {
        let Some((variable, value)) = ENVIRONMENT
            .iter()
            .find_map(|name| std::env::var(name).ok().map(|value| (*name, value)))
        else {
            bail!("no proxy: give -x socks5h://HOST:PORT (or set ALL_PROXY)");
        };
        value
            .split(',')
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .map(|url| {
                // A bare host:port in SOCKS_PROXY means SOCKS5, as tsocks and friends read it.
                if url.contains("://") || variable.starts_with("ALL") || variable.starts_with("all")
                {
                    url
                } else {
                    format!("socks5://{url}")
                }
            })
            .collect()
    } else {
        urls.to_vec()
    };
    urls.iter()
        .map(|url| url.parse::<Hop>().with_context(|| format!("proxy {url}")))
        .collect()
}
