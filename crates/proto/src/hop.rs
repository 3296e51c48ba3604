//! One proxy of a chain, written as a URL in the conventions of curl and proxychains. Here
//! rather than in the client library because every client — the tokio library, the server's
//! upstream routes, the LD_PRELOAD shim — reads the same URLs.

use std::fmt;
use std::str::FromStr;

use crate::password::Credentials;
use crate::Address;

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// SOCKS4: names are resolved by the client.
    Socks4,
    /// SOCKS4a: names are resolved by the proxy.
    Socks4a,
    /// SOCKS5 with names resolved by the client (`socks5://`, as curl).
    Socks5,
    /// SOCKS5 with names resolved by the proxy (`socks5h://`, as curl).
    Socks5h,
    /// An HTTP proxy (`http://`, `https://` inside TLS): CONNECT (RFC 9110 §9.3.6) with
    /// Basic credentials; names go to the proxy. It carries TCP only: no UDP, BIND or ICMP.
    Http,
}

impl Flavour {
    /// Whether the proxy is given names as they are (rather than addresses).
    pub fn resolves_names(self) -> bool {
        matches!(self, Self::Socks4a | Self::Socks5h | Self::Http)
    }

    /// Whether the proxy carries TCP connections only (an HTTP proxy).
    pub fn carries_only_tcp(self) -> bool {
        self == Self::Http
    }

    fn scheme(self) -> &'static str {
        match self {
            Self::Socks4 => "socks4",
            Self::Socks4a => "socks4a",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
            Self::Http => "http",
        }
    }
}

/// Why a chain cannot carry what a command needs beyond TCP (UDP, BIND, ICMP): the first
/// HTTP proxy in it, named; `None` when every hop can.
pub fn beyond_tcp_refusal(hops: &[Hop], what: &str) -> Option<String> {
    let (index, hop) = hops
        .iter()
        .enumerate()
        .find(|(_, hop)| hop.flavour.carries_only_tcp())?;
    Some(format!(
        "{what} cannot pass hop {} ({hop}): an HTTP proxy carries only TCP connections",
        index + 1
    ))
}

/// A proxy: its protocol, address and (SOCKS5) credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Hop {
    /// The protocol.
    pub flavour: Flavour,
    /// Where the proxy listens.
    pub address: Address,
    /// Username and password (SOCKS5), or the USERID (SOCKS4, the username part).
    pub credentials: Option<Credentials>,
    /// SOCKS inside TLS to this proxy (`socks5s://`, `socks5hs://`).
    pub tls: bool,
}

impl fmt::Debug for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hop({self})")
    }
}

impl fmt::Display for Hop {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme())?;
        if let Some(credentials) = &self.credentials {
            write!(f, "{}@", credentials.username_lossy())?;
        }
        write!(f, "{}", self.address)
    }
}

impl Hop {
    fn scheme(&self) -> String {
        if self.flavour == Flavour::Http {
            return if self.tls { "https" } else { "http" }.to_owned();
        }
        let tls = if self.tls { "s" } else { "" };
        format!("{}{tls}", self.flavour.scheme())
    }

    /// The URL with the credentials, percent-encoded: parses back to the same hop. Keep it
    /// out of logs.
    pub fn url_with_password(&self) -> String {
        let Some(credentials) = &self.credentials else {
            return self.to_string();
        };
        format!(
            "{}://{}:{}@{}",
            self.scheme(),
            percent_encode(credentials.username()),
            percent_encode(credentials.password()),
            self.address
        )
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Why a proxy URL does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

/// `url` as it may be shown in errors and logs: whatever stands before the host's `@` (the
/// user and the password) becomes `***`, whether or not the rest parses; without an `@`, a
/// "port" that is no number (`socks5://alice:hunter2`, the host forgotten) is hidden too.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redacted_authority(rest)),
        None => redacted_authority(url),
    }
}

/// `text` (an error message, a log line) with every `scheme://…` in it [`redacted`]. A URL
/// in double quotes ends at the closing quote (not at an escaped one, `\"`: a password may
/// hold quotes, apostrophes and spaces); one not in quotes at white space or a quote.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        out.push_str(before);
        let scheme = before[..start]
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
        let end = url_end(after, scheme.ends_with('"'));
        out.push_str(&redacted_authority(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn url_end(text: &str, quoted: bool) -> usize {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        let ends = if quoted {
            c == '"' || c == '\n'
        } else {
            c.is_whitespace() || matches!(c, '"' | '\'' | '`')
        };
        if ends && !escaped {
            return index;
        }
        escaped = c == '\\' && !escaped;
    }
    text.len()
}

fn redacted_authority(authority: &str) -> String {
    if let Some((_, host)) = authority.rsplit_once('@') {
        return format!("***@{host}");
    }
    // A path or trailing punctuation (`proxy:1080/`, `(socks5://h:1080)`) is no password.
    let hostport = authority.trim_end_matches(['/', ')', ']', ',', '.', ';']);
    match hostport.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && !port.bytes().all(|b| b.is_ascii_digit())
                && !authority.ends_with(']')
                && !host.contains(':') =>
        {
            format!("{host}:***")
        }
        _ => authority.to_owned(),
    }
}

impl FromStr for Hop {
    type Err = UrlError;

    /// `socks5h://user:pass@host:port`; the scheme is one of socks4, socks4a, socks5,
    /// socks5h (`socks://` means socks5, as curl takes it), or socks5s, socks5hs for SOCKS5
    /// inside TLS, or http, https for an HTTP proxy (CONNECT); the port defaults to 1080
    /// (as curl's does); user and password are percent-decoded.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let error = |why: &str| UrlError(format!("{:?}: {why}", redacted(url)));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| error("expected SCHEME://[USER:PASS@]HOST[:PORT]"))?;
        let (flavour, tls) = match scheme.to_ascii_lowercase().as_str() {
            "socks4" => (Flavour::Socks4, false),
            "socks4a" => (Flavour::Socks4a, false),
            "socks5" | "socks" => (Flavour::Socks5, false),
            "socks5h" => (Flavour::Socks5h, false),
            "socks5s" => (Flavour::Socks5, true),
            "socks5hs" => (Flavour::Socks5h, true),
            "http" => (Flavour::Http, false),
            "https" => (Flavour::Http, true),
            _ => {
                return Err(error(
                    "the scheme must be socks4, socks4a, socks5, socks5h, socks5s, socks5hs, \
                     http or https",
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, host) = match rest.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let (user, password) = (percent_decode(user), percent_decode(password));
                Some(Credentials::new(user, password).map_err(|e| error(&e.to_string()))?)
            }
        };
        let with_port = if host.starts_with('[') && host.ends_with(']') || !host.contains(':') {
            format!("{host}:1080")
        } else {
            host.to_owned()
        };
        let address = with_port
            .parse()
            .map_err(|e: crate::addr::AddressParseError| error(&e.to_string()))?;
        Ok(Self {
            flavour,
            address,
            credentials,
            tls,
        })
    }
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                out.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_the_usual_forms() {
        let hop: Hop = "socks5h://alice:s%40cret@proxy.example:1081"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hop.flavour, Flavour::Socks5h);
        assert_eq!(hop.address.to_string(), "proxy.example:1081");
        let credentials = hop.credentials.clone().unwrap_or_else(|| unreachable!());
        assert_eq!(credentials.password(), b"s@cret");
        assert_eq!(hop.to_string(), "socks5h://alice@proxy.example:1081");
        let plain: Hop = "socks4a://10.0.0.1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.address.to_string(), "10.0.0.1:1080");
        let v6: Hop = "socks5://[::1]".parse().unwrap_or_else(|e| panic!("{e}"));
        let over_tls: Hop = "socks5hs://bob:pw@gw.example:1443"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(over_tls.tls && over_tls.flavour == Flavour::Socks5h);
        assert_eq!(over_tls.to_string(), "socks5hs://bob@gw.example:1443");
        assert_eq!(
            over_tls.url_with_password().parse::<Hop>().ok(),
            Some(over_tls)
        );
        assert_eq!(v6.address.to_string(), "[::1]:1080");
        for (url, tls) in [
            ("http://u:p%40ss@squid:3128", false),
            ("https://squid:3129", true),
        ] {
            let http: Hop = url.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(http.flavour == Flavour::Http && http.tls == tls, "{url}");
            assert!(http.flavour.resolves_names() && http.flavour.carries_only_tcp());
            assert_eq!(http.url_with_password().parse::<Hop>().ok(), Some(http));
        }
        let chain: Vec<Hop> = ["socks5://a:1", "http://b:2"]
            .iter()
            .map(|url| url.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(
            beyond_tcp_refusal(&chain, "UDP").as_deref(),
            Some("UDP cannot pass hop 2 (http://b:2): an HTTP proxy carries only TCP connections")
        );
        assert_eq!(beyond_tcp_refusal(&chain[..1], "UDP"), None);
        let again: Hop = hop
            .url_with_password()
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, hop);
        assert!("ftp://proxy:3128".parse::<Hop>().is_err());
        assert!("proxy:1080".parse::<Hop>().is_err());
    }

    // Issue #21, finding 6: a URL that fails to parse is named without its password, in
    // every way it can fail (check, a failed reload and the CLI show this text).
    #[test]
    fn a_proxy_url_that_fails_to_parse_is_echoed_without_its_password() {
        let bad = [
            "socks5h://alice:hunter2@bad host:1080",
            "socks5h://alice:hunter2@proxy:99999",
            "ftp://alice:hunter2@proxy:1080",
            "alice:hunter2@proxy:1080",
            "socks5://alice:hunter2@proxy:port",
            &format!("socks5://alice:{}@proxy", "x".repeat(300)),
        ];
        for url in bad {
            let error = url
                .parse::<Hop>()
                .err()
                .unwrap_or_else(|| panic!("{url} parsed"));
            let text = error.to_string();
            assert!(!text.contains("hunter2") && !text.contains("xxx"), "{text}");
            assert!(text.contains("***@"), "{text}");
        }
        assert_eq!(
            redacted("socks5h://alice:hunter2@proxy:1080"),
            "socks5h://***@proxy:1080"
        );
        assert_eq!(redacted("socks5h://proxy:1080"), "socks5h://proxy:1080");
        assert_eq!(redacted("socks5h://[::1]:1080"), "socks5h://[::1]:1080");
        assert_eq!(redacted("socks5h://[::1]"), "socks5h://[::1]");
        // The host forgotten: the password would pass for a port.
        assert_eq!(redacted("socks5://alice:hunter2"), "socks5://alice:***");
        assert_eq!(redacted("socks5://proxy:1080/"), "socks5://proxy:1080/");
        assert_eq!(
            redact_urls("(see socks5://h:1080)"),
            "(see socks5://h:1080)"
        );
    }

    #[test]
    fn urls_in_a_text_lose_their_passwords_even_with_escaped_quotes() {
        let spaced =
            redact_urls(r#"invalid type: string "socks5://u:it's a secret@h:1", expected"#);
        assert_eq!(
            spaced,
            r#"invalid type: string "socks5://***@h:1", expected"#
        );
        let text =
            r#"invalid value "socks5://u:pa\"ss@host:1" for key `chains`; see socks5://a:b@c"#;
        let shown = redact_urls(text);
        assert!(
            !shown.contains("pa") && !shown.contains("ss@") && !shown.contains(":b@"),
            "{shown}"
        );
        assert_eq!(
            redact_urls("from socks5://x:y@h:1 and socks4://h:1080 then"),
            "from socks5://***@h:1 and socks4://h:1080 then"
        );
    }
}
