//! `socksgate import proxychains FILE`: a proxychains(-ng) configuration as the client's
//! proxy chain (`SOCKSGATE_PROXY`, read by `connect`, `forward` and `socksify`) and the
//! `socksify` flags for its other settings.

use std::fmt::Write;
use std::net::IpAddr;

use socksgate_proto::hop::{Flavour, Hop};
use socksgate_proto::password::Credentials;
use socksgate_proto::Address;

use super::Conversion;

/// Converts the text of a proxychains.conf.
pub(crate) fn convert(text: &str, source: &str) -> Conversion {
    let mut notes: Vec<String> = Vec::new();
    let mut dropped = 0;
    let mut hops: Vec<Hop> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut proxy_dns = false;
    let mut in_list = false;
    let mut proxies: Vec<(usize, Vec<&str>)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.eq_ignore_ascii_case("[ProxyList]") {
            in_list = true;
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if in_list {
            proxies.push((number, words));
            continue;
        }
        let mut drop = |why: String| {
            notes.push(format!("line {number}: `{line}`: {why}"));
            dropped += 1;
        };
        match words[0] {
            "strict_chain" => notes.push(format!(
                "line {number}: strict_chain: every proxy, in order, as one chain"
            )),
            "proxy_dns" => proxy_dns = true,
            "remote_dns_subnet" => match words.get(1).and_then(|octet| octet.parse::<u8>().ok()) {
                Some(octet) => {
                    flags.push(format!("--fake-range {octet}.0.0.0/8"));
                }
                None => drop("not a number".to_owned()),
            },
            "localnet" => match words.get(1).and_then(|net| cidr(net)) {
                Some(block) => flags.push(format!("--direct {block}")),
                None => drop(
                    "not ADDRESS/NETMASK (a port-specific localnet has no equivalent)".to_owned(),
                ),
            },
            "quiet_mode" => notes.push(format!(
                "line {number}: quiet_mode: socksify is quiet unless asked (--debug)"
            )),
            "dynamic_chain" | "random_chain" | "round_robin_chain" | "chain_len" => drop(
                "socksgate's client chains are strict: every hop in order (failover and \
                 random selection are the server's, in [[upstream]] groups)"
                    .to_owned(),
            ),
            "tcp_read_time_out" | "tcp_connect_time_out" => {
                drop("socksgate's client has no such timeout".to_owned())
            }
            _ => drop("not understood".to_owned()),
        }
    }
    for (number, words) in proxies {
        match hop(&words, proxy_dns) {
            Ok(hop) => hops.push(hop),
            Err(why) => {
                notes.push(format!("line {number}: `{}`: {why}", words.join(" ")));
                dropped += 1;
            }
        }
    }
    let mut output = format!("# socksgate's client settings, converted from {source}\n");
    for note in &notes {
        let _ = writeln!(output, "# {note}");
    }
    if !flags.is_empty() {
        let _ = writeln!(output, "# socksify also needs: {}", flags.join(" "));
    }
    let chain: Vec<String> = hops.iter().map(Hop::url_with_password).collect();
    if chain.is_empty() {
        output.push_str("# no proxy could be converted\n");
        dropped += 1;
    } else {
        let _ = writeln!(output, "export SOCKSGATE_PROXY='{}'", chain.join(","));
    }
    Conversion { output, dropped }
}

/// `TYPE HOST PORT [USER PASS]` of the proxy list.
fn hop(words: &[&str], proxy_dns: bool) -> Result<Hop, String> {
    let [kind, host, port, rest @ ..] = words else {
        return Err("expected TYPE HOST PORT [USER PASS]".to_owned());
    };
    let flavour = match (*kind, proxy_dns) {
        ("socks5", true) => Flavour::Socks5h,
        ("socks5", false) => Flavour::Socks5,
        ("socks4", true) => Flavour::Socks4a,
        ("socks4", false) => Flavour::Socks4,
        ("http" | "raw", _) => {
            return Err(format!(
                "{kind} proxies are not SOCKS: socksgate cannot use them"
            ))
        }
        _ => return Err(format!("unknown proxy type {kind}")),
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    let address = match host.parse::<IpAddr>() {
        Ok(ip) => Address::from(std::net::SocketAddr::new(ip, port)),
        Err(_) => format!("{host}:{port}")
            .parse()
            .map_err(|_| format!("bad host {host}"))?,
    };
    let credentials = match rest {
        [] => None,
        [user, password] => Some(
            Credentials::new(user, password).map_err(|error| format!("credentials: {error}"))?,
        ),
        [user] if matches!(flavour, Flavour::Socks4 | Flavour::Socks4a) => {
            Some(Credentials::new(user, "").map_err(|error| error.to_string())?)
        }
        _ => return Err("expected USER PASS after the port".to_owned()),
    };
    Ok(Hop {
        flavour,
        address,
        credentials,
        tls: false,
    })
}

/// `192.168.0.0/255.255.0.0` (or `/16`) as `192.168.0.0/16`.
fn cidr(text: &str) -> Option<String> {
    let (address, mask) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let length = match mask.parse::<u8>() {
        Ok(length) => length,
        Err(_) => {
            let mask: std::net::Ipv4Addr = mask.parse().ok()?;
            let bits = u32::from(mask);
            // Only contiguous masks have a prefix length.
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return None;
            }
            u8::try_from(bits.leading_ones()).ok()?
        }
    };
    Some(format!("{address}/{length}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_chain_with_names_by_the_proxies_converts_whole() {
        let text = "strict_chain\nproxy_dns\nremote_dns_subnet 224\n\
                    localnet 192.168.0.0/255.255.0.0\n[ProxyList]\n\
                    socks5 10.0.0.1 1080 alice s3cr:t\nsocks4\t10.0.0.2 1081\n";
        let converted = convert(text, "pc.conf");
        assert_eq!(converted.dropped, 0, "{}", converted.output);
        assert!(
            converted.output.contains(
                "export SOCKSGATE_PROXY='socks5h://alice:s3cr%3At@10.0.0.1:1080,socks4a://10.0.0.2:1081'"
            ),
            "{}",
            converted.output
        );
        assert!(converted
            .output
            .contains("--fake-range 224.0.0.0/8 --direct 192.168.0.0/16"));
    }

    #[test]
    fn what_cannot_be_mapped_is_named_and_counted() {
        let text = "dynamic_chain\ntcp_read_time_out 15000\n[ProxyList]\n\
                    http 10.0.0.3 3128\nsocks5 proxy.example 1080\n";
        let converted = convert(text, "pc.conf");
        assert_eq!(converted.dropped, 3, "{}", converted.output);
        assert!(converted.output.contains("line 1: `dynamic_chain`"));
        assert!(converted.output.contains("line 4: `http 10.0.0.3 3128`"));
        assert!(converted
            .output
            .contains("export SOCKSGATE_PROXY='socks5://proxy.example:1080'"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the text, the conversion ends with a result and counts what it dropped.
        #[test]
        fn any_text_converts_without_panicking(text in "(\\[ProxyList\\]|socks[45]|http|localnet|[a-z0-9 ./:\\t_]{0,20}|\\n){0,40}") {
            let converted = convert(&text, "fuzz.conf");
            prop_assert!(converted.output.starts_with("# socksgate's client settings"));
        }
    }
}
