//! What a rule can match on: address blocks, host names and suffixes, ports, days and hours.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block `network/prefix`; bits beyond the prefix are cleared. `None` if the prefix
    /// is longer than the address.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Self> {
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > bits {
            return None;
        }
        let network = match network {
            IpAddr::V4(ip) => IpAddr::V4((u32::from(ip) & mask32(prefix)).into()),
            IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) & mask128(prefix)).into()),
        };
        Some(Self { network, prefix })
    }

    /// Whether `ip` is in the block. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether every address of `other` is in this block.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(other.network)
    }

    /// Whether the whole block lies in one of the private ranges [`is_private_destination`]
    /// refuses (for `check`'s warning about rules the guard overrides).
    pub fn is_private(&self) -> bool {
        private_ranges().any(|range| range.covers(self))
    }

    /// Whether some of the block is private space but not all of it: a private range lies
    /// inside it (`0.0.0.0/0`, `192.0.0.0/2`).
    pub fn overlaps_private(&self) -> bool {
        !self.is_private() && private_ranges().any(|range| self.covers(&range))
    }
}

/// The IP address a name spells: an IPv4 or IPv6 address, or an IPv4 address in one of the
/// forms `inet_aton` takes (`127.1`, `0x7f000001`, `2130706433`, `017700000001`).
pub(crate) fn numeric_address(name: &str) -> Option<IpAddr> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(ip);
    }
    // inet_aton takes digits, hex digits after 0x and dots, nothing else (`from_str_radix`
    // alone would also take a sign: "+8.8.8.8" is a name to a resolver, not 8.8.8.8).
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b'x' | b'X'))
    {
        return None;
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) = match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            None => (*part, 10),
        };
        if digits.is_empty() && radix != 8 {
            return None;
        }
        numbers
            .push(u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, radix).ok()?);
    }
    // Every part but the last is one byte; the last fills the bytes left.
    let (last, leading) = numbers.split_last()?;
    let mut value: u64 = 0;
    for &byte in leading {
        if byte > 0xff {
            return None;
        }
        value = value << 8 | u64::from(byte);
    }
    let room = 8 * (4 - leading.len() as u32);
    if u64::from(*last) >> room != 0 {
        return None;
    }
    value = value << room | u64::from(*last);
    u32::try_from(value).ok().map(|v| IpAddr::V4(v.into()))
}

/// `localhost` and names under it (RFC 6761): this host, whoever resolves them.
pub(crate) fn is_local_name(host: &socksgate_proto::Host) -> bool {
    let socksgate_proto::Host::Domain(name) = host else {
        return false;
    };
    let name = name.as_str().trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The ranges [`is_private_destination`] refuses, as blocks (NAT64 addresses that embed a
/// private IPv4 address aside).
const PRIVATE_RANGES: [(&str, u8); 16] = [
    ("0.0.0.0", 8),
    ("10.0.0.0", 8),
    ("100.64.0.0", 10),
    ("127.0.0.0", 8),
    ("169.254.0.0", 16),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("198.18.0.0", 15),
    ("224.0.0.0", 4),
    ("240.0.0.0", 4),
    ("::", 128),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
    ("ff00::", 8),
    ("64:ff9b:1::", 48),
];

fn private_ranges() -> impl Iterator<Item = Cidr> {
    PRIVATE_RANGES
        .iter()
        .filter_map(|&(network, prefix)| Cidr::new(network.parse().ok()?, prefix))
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or address block"))?;
        let full = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => full,
            Some(prefix) => prefix
                .parse()
                .map_err(|_| format!("{text:?}: the prefix length must be a number"))?,
        };
        Self::new(network, prefix)
            .ok_or_else(|| format!("{text:?}: prefix longer than the address"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A destination pattern: an address block, an exact host name, or `*.suffix` (any name
/// ending in `.suffix`). Names compare without case and without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// An address block; a name matches it through the address it resolves to.
    Block(Cidr),
    /// Exactly this name.
    Name(String),
    /// Any name ending in `.` + this suffix (not the suffix itself).
    Suffix(String),
}

impl HostPattern {
    /// Whether `name` matches a name pattern (`false` for a block).
    pub fn matches_name(&self, name: &str) -> bool {
        let name = normalise(name);
        match self {
            Self::Block(_) => false,
            Self::Name(exact) => name == *exact,
            Self::Suffix(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }

    /// Whether every name or address `other` matches, this matches too.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (Self::Block(a), Self::Block(b)) => a.covers(b),
            (Self::Name(a), Self::Name(b)) => a == b,
            (Self::Suffix(_), Self::Name(name)) => self.matches_name(name),
            (Self::Suffix(a), Self::Suffix(b)) => a == b || Self::Suffix(a.clone()).matches_name(b),
            _ => false,
        }
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(suffix) = text.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("{text:?}: expected *.example.com"));
            }
            return Ok(Self::Suffix(normalise(suffix)));
        }
        if text.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard may only start a name (*.example.com)"
            ));
        }
        if let Ok(block) = text.parse::<Cidr>() {
            return Ok(Self::Block(block));
        }
        if text.contains('/') || text.contains(':') || text.is_empty() {
            return Err(format!(
                "{text:?} is not a host name, address or address block"
            ));
        }
        Ok(Self::Name(normalise(text)))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Block(block) => block.fmt(f),
            Self::Name(name) => f.write_str(name),
            Self::Suffix(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// A port or a range of ports, `443` or `8000-8100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Whether the range includes all of `other`.
    pub fn covers(&self, other: &PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let parse = |part: &str| {
            part.trim().parse::<u16>().map_err(|_| {
                format!("{text:?}: expected a port (0-65535) or a range like 8000-8100")
            })
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if first > last {
            return Err(format!("{text:?}: the range is backwards"));
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Days of the week, as a set (bit 0 is Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Days(u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Days {
    /// Every day.
    pub const ALL: Self = Self(0x7f);

    /// Whether the set holds `weekday` (0 = Monday … 6 = Sunday).
    pub fn contains(&self, weekday: u8) -> bool {
        weekday < 7 && self.0 & (1 << weekday) != 0
    }

    /// Whether this set holds every day of `other`.
    pub fn covers(&self, other: &Days) -> bool {
        self.0 & other.0 == other.0
    }

    /// The day names in the set, Monday first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..7u8)
            .filter(|&day| self.contains(day))
            .map(|day| DAY_NAMES[usize::from(day)])
    }

    /// Parses items like `mon-fri`, `sat`, `sun`.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| format!("{name:?}: expected mon, tue, wed, thu, fri, sat or sun"))
        };
        let mut bits = 0u8;
        for item in items {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let (first, last) = (day(first)?, day(last)?);
            let mut index = first;
            loop {
                bits |= 1 << index;
                if index == last {
                    break;
                }
                index = (index + 1) % 7; // fri-mon wraps over the weekend
            }
        }
        Ok(Self(bits))
    }
}

/// A window of the day, `08:00-18:00` (the end excluded); `22:00-06:00` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hours {
    start: u16,
    end: u16,
}

impl Hours {
    /// Whether `minute` (minutes since midnight) is in the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Whether the window includes all of `other` (checked minute by minute: 1,440 at most).
    pub fn covers(&self, other: &Hours) -> bool {
        (0..1440)
            .filter(|&m| other.contains(m))
            .all(|m| self.contains(m))
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl FromStr for Hours {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || format!("{text:?}: expected a window like 08:00-18:00");
        let minute = |clock: &str| -> Option<u16> {
            let (hours, minutes) = clock.trim().split_once(':')?;
            let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
            (hours <= 24 && minutes < 60 && hours * 60 + minutes <= 1440)
                .then_some(hours * 60 + minutes)
        };
        let (start, end) = text.split_once('-').ok_or_else(error)?;
        let (start, end) = (
            minute(start).ok_or_else(error)?,
            minute(end).ok_or_else(error)?,
        );
        if start == end {
            return Err(format!("{text:?}: the window is empty"));
        }
        Ok(Self { start, end })
    }
}

/// The source a client counts as for per-source limits: an IPv4 address as it is, an IPv6
/// address as its first `ipv6_prefix` bits (a client given a /64 has every address in it,
/// so counting per /128 would let it evade every per-source limit). IPv4-mapped IPv6
/// addresses count as their IPv4 address.
pub fn source_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(ip) => IpAddr::V4(ip),
        IpAddr::V6(ip) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(ip) & mask).into())
        }
    }
}

/// Whether `ip` is an address no public gateway should reach on a client's behalf: this
/// host, private networks (RFC 1918, ULA), link-local (cloud metadata lives at
/// 169.254.169.254), shared address space, multicast, and reserved ranges.
pub fn is_private_destination(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_broadcast()
                || ip.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
                || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
                || a >= 240
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || nat64_embeds_private(ip)
        }
    }
}

/// 64:ff9b::/96 carries an IPv4 address in its last 32 bits (NAT64, RFC 6052); all of
/// 64:ff9b:1::/48 is local-use translation (RFC 8215), a way into the site's own networks.
fn nat64_embeds_private(ip: std::net::Ipv6Addr) -> bool {
    let segments = ip.segments();
    if segments[..3] == [0x64, 0xff9b, 1] {
        return true;
    }
    if segments[..6] != [0x64, 0xff9b, 0, 0, 0, 0] {
        return false;
    }
    let embedded = (u32::from(segments[6]) << 16) | u32::from(segments[7]);
    is_private_destination(IpAddr::V4(embedded.into()))
}
