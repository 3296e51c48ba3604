//! What `socksgate socksify` told this library, through the environment.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use socksgate_policy::Cidr;
use socksgate_proto::hop::Hop;

/// The proxies, first hop first, as URLs separated by commas (hop addresses are IP
/// addresses: `socksgate socksify` resolves them, so this library never has to).
pub(crate) const PROXIES: &str = "SOCKSGATE_SOCKSIFY_PROXIES";
/// Address blocks reached directly, separated by commas (default: loopback).
pub(crate) const DIRECT: &str = "SOCKSGATE_SOCKSIFY_DIRECT";
/// The IPv4 block fake addresses for names come from (default 240.0.0.0/8).
pub(crate) const FAKE_RANGE: &str = "SOCKSGATE_SOCKSIFY_FAKE_RANGE";
/// Set to 1 to log each redirected connection on standard error.
pub(crate) const DEBUG: &str = "SOCKSGATE_SOCKSIFY_DEBUG";

#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) chain: Vec<Hop>,
    pub(crate) direct: Vec<Cidr>,
    /// First address and size of the fake-address block.
    pub(crate) fake_base: u32,
    pub(crate) fake_size: u32,
    /// Whether names are resolved by the (last) proxy, through fake addresses.
    pub(crate) remote_names: bool,
    pub(crate) debug: bool,
}

impl Settings {
    fn from_environment() -> Self {
        let chain: Vec<Hop> = std::env::var(PROXIES)
            .unwrap_or_default()
            .split(',')
            .filter(|url| !url.trim().is_empty())
            .filter_map(|url| url.trim().parse().ok())
            .collect();
        let direct = match std::env::var(DIRECT) {
            Ok(list) => list
                .split(',')
                .filter_map(|c| c.trim().parse().ok())
                .collect(),
            Err(_) => ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        };
        let (fake_base, fake_size) = std::env::var(FAKE_RANGE)
            .ok()
            .and_then(|text| parse_v4_block(&text))
            .unwrap_or((u32::from(Ipv4Addr::new(240, 0, 0, 0)), 1 << 24));
        let remote_names = chain.last().is_some_and(|hop| hop.flavour.resolves_names());
        Self {
            chain,
            direct,
            fake_base,
            fake_size,
            remote_names,
            debug: std::env::var(DEBUG).is_ok_and(|v| v == "1"),
        }
    }

    /// Whether `ip` is reached without the proxies.
    pub(crate) fn is_direct(&self, ip: IpAddr) -> bool {
        self.direct.iter().any(|block| block.contains(ip))
    }
}

fn parse_v4_block(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = text.trim().split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|&p| (8..=30).contains(&p))?;
    let size = 1u32 << (32 - prefix);
    Some((u32::from(address) & !(size - 1), size))
}

pub(crate) fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(Settings::from_environment)
}
