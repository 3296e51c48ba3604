//! What `ping` and `traceroute` share: opening the ICMP extension through the chain (with a
//! clear word when the proxy lacks it), the target, and how answers are named; and the
//! current-thread runtime the client commands run on (`runtime`).

use std::net::IpAddr;
use std::time::Duration;

use socksgate_client::{Chain, ChainError, HopFailure, IcmpEcho};
use socksgate_proto::client::ClientError;
use socksgate_proto::{Address, Host, Reply};

/// Exit codes of `ping` and `traceroute`, as iputils' ping: 1 when no reply came back,
/// 2 for other errors.
pub(crate) const NO_REPLY: u8 = 1;
pub(crate) const FAILED: u8 = 2;

/// The target as given on the command line (a name, an IPv4 or an IPv6 address).
pub(crate) fn target(host: &str) -> anyhow::Result<Address> {
    crate::proxies::target(host, 0)
}

/// Opens the extension at the chain's last hop, saying plainly what a refusal means.
pub(crate) async fn open(chain: &Chain, target: &Address) -> anyhow::Result<IcmpEcho> {
    chain.icmp_echo(target).await.map_err(|error| {
        let why = match refusal(&error) {
            Some(Reply::COMMAND_NOT_SUPPORTED) => {
                "the proxy does not offer socksgate's ICMP extension (reply 0x07; a socksgate \
                 server enables it with [icmp] enabled = true)"
            }
            Some(Reply::NOT_ALLOWED) => {
                "the proxy's rules do not allow ICMP to this target \
                                         (reply 0x02)"
            }
            _ => return anyhow::Error::from(error),
        };
        anyhow::anyhow!("{why}: {error}")
    })
}

fn refusal(error: &ChainError) -> Option<Reply> {
    match &error.failure {
        HopFailure::Refused(ClientError::Rejected(reply)) => Some(*reply),
        _ => None,
    }
}

/// The probed address, as the proxy named it in its reply.
pub(crate) fn probed(echo: &IcmpEcho) -> String {
    match &echo.target().host {
        Host::Ip(ip) => ip.to_string(),
        Host::Domain(name) => name.to_string(),
    }
}

/// A reporting node, as ping prints it.
pub(crate) fn node(address: &Address) -> String {
    match &address.host {
        Host::Ip(IpAddr::V4(ip)) if ip.is_unspecified() => "the proxy".to_owned(),
        Host::Ip(IpAddr::V6(ip)) if ip.is_unspecified() => "the proxy".to_owned(),
        Host::Ip(ip) => ip.to_string(),
        Host::Domain(name) => name.to_string(),
    }
}

/// ping's words for a destination-unreachable code (ICMPv6 codes for IPv6 targets).
pub(crate) fn unreachable_words(v6: bool, code: u8) -> String {
    let words = if v6 {
        match code {
            0 => "No route",
            1 => "Administratively prohibited",
            3 => "Address unreachable",
            4 => "Port unreachable",
            _ => "",
        }
    } else {
        match code {
            0 => "Destination Net Unreachable",
            1 => "Destination Host Unreachable",
            2 => "Destination Protocol Unreachable",
            3 => "Destination Port Unreachable",
            9 | 10 | 13 => "Communication administratively prohibited",
            _ => "",
        }
    };
    if words.is_empty() {
        format!("Destination unreachable, code {code}")
    } else {
        words.to_owned()
    }
}

/// traceroute's mark for a destination-unreachable code.
pub(crate) fn unreachable_mark(v6: bool, code: u8) -> String {
    let mark = match (v6, code) {
        (false, 0) | (true, 0) => "!N",
        (false, 1) | (true, 3) => "!H",
        (false, 2) => "!P",
        (false, 9 | 10 | 13) | (true, 1) => "!X",
        _ => "",
    };
    if mark.is_empty() {
        format!("!<{code}>")
    } else {
        mark.to_owned()
    }
}

/// Milliseconds with three decimals, as ping and traceroute print them.
pub(crate) fn millis(micros: u32) -> String {
    format!("{:.3}", f64::from(micros) / 1000.0)
}

/// Seconds given as a decimal number (`-i 0.2`, `-W 2`).
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?}: expected seconds, like 1 or 0.5"))?;
    if !(0.0..=3600.0).contains(&value) {
        return Err(format!("{text:?}: expected 0 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Prints one line of a report. A closed standard output (`ping … | head`) is not an error
/// worth a panic: the rest of the report is simply not printed.
pub(crate) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A current-thread runtime for a client command (connect, ping, traceroute).
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
