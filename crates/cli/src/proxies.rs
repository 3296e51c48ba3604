//! The chain of proxies for every client command (`connect`, `forward`, `ping`,
//! `traceroute`, `socksify`, `tun`): `-x URL` flags, or the environment.

use anyhow::{bail, Context};
use std::path::PathBuf;

use socksgate_client::{Chain, ClientTls, Hop};

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

/// The proxies of `connect` and `forward`, and how TLS hops are checked (curl's names).
#[derive(Debug, clap::Args)]
pub(crate) struct ProxyArgs {
    /// A proxy URL: socks5h://[USER:PASS@]HOST[:PORT] (also socks5, socks4a, socks4, and
    /// socks5s, socks5hs for SOCKS inside TLS); repeat for a chain, first hop first.
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub(crate) proxies: Vec<String>,
    /// TLS hops: trust these authorities (PEM) instead of the system's.
    #[arg(long = "proxy-cacert", value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
    /// TLS hops: accept only this public key, sha256//BASE64 (as curl).
    #[arg(long = "proxy-pinnedpubkey", value_name = "PIN")]
    pub(crate) pin: Option<String>,
    /// TLS hops: present this client certificate (PEM), with --proxy-key.
    #[arg(long = "proxy-cert", value_name = "FILE", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// TLS hops: the client certificate's private key (PEM).
    #[arg(long = "proxy-key", value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Offer GSS-API (Kerberos, with the ticket cache's credentials) to SOCKS5 hops.
    #[arg(long = "socks5-gssapi")]
    pub(crate) gssapi: bool,
    /// GSS-API: the proxies' service name (the context is with SERVICE@HOST).
    #[arg(
        long = "socks5-gssapi-service",
        value_name = "NAME",
        default_value = "rcmd"
    )]
    pub(crate) gssapi_service: String,
    /// GSS-API: the protection asked for: none, integrity or confidentiality.
    #[arg(
        long = "socks5-gssapi-protection",
        value_name = "LEVEL",
        default_value = "confidentiality"
    )]
    pub(crate) gssapi_protection: String,
    /// GSS-API: send the protection level unprotected (NEC-style servers).
    #[arg(long = "socks5-gssapi-nec")]
    pub(crate) gssapi_nec: bool,
    /// How long reaching the first proxy, and then each proxy's handshake, may take (as
    /// curl's --connect-timeout, in seconds).
    #[arg(long = "connect-timeout", value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub(crate) connect_timeout: std::time::Duration,
}

/// A positive number of seconds (fractions allowed).
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds < 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?}: expected a positive number of seconds"))
}

impl ProxyArgs {
    /// The chain for a command that needs more than TCP (`what`: UDP, ICMP): a chain with
    /// an HTTP proxy cannot carry it, which is said before anything is sent.
    pub(crate) fn chain_beyond_tcp(&self, what: &str) -> anyhow::Result<Chain> {
        let chain = self.chain()?;
        match socksgate_proto::hop::beyond_tcp_refusal(chain.hops(), what) {
            Some(why) => Err(crate::exit::usage(why)),
            None => Ok(chain),
        }
    }

    /// The chain, with the TLS settings when any is given.
    pub(crate) fn chain(&self) -> anyhow::Result<Chain> {
        let chain =
            self.with_gssapi(chain(&self.proxies)?)?
                .with_timeouts(socksgate_client::HopTimeouts {
                    connect: self.connect_timeout,
                    handshake: self.connect_timeout,
                });
        if self.cacert.is_none() && self.pin.is_none() && self.cert.is_none() {
            return Ok(chain);
        }
        let pin = match &self.pin {
            Some(pin) => Some(pin.parse().context("--proxy-pinnedpubkey")?),
            None => None,
        };
        let options = ClientTls {
            ca: self.cacert.clone(),
            pin,
            cert: self.cert.clone(),
            key: self.key.clone(),
        };
        Ok(chain.with_tls(&options)?)
    }
}

impl ProxyArgs {
    #[cfg(feature = "gssapi")]
    fn with_gssapi(&self, chain: Chain) -> anyhow::Result<Chain> {
        use socksgate_client::{GssapiLevel, GssapiOptions};
        if !self.gssapi {
            return Ok(chain);
        }
        let protection = match self.gssapi_protection.as_str() {
            "none" => GssapiLevel::None,
            "integrity" => GssapiLevel::Integrity,
            "confidentiality" => GssapiLevel::Confidentiality,
            other => bail!(
                "--socks5-gssapi-protection {other:?}: expected none, integrity or confidentiality"
            ),
        };
        Ok(chain.with_gssapi(GssapiOptions {
            service: self.gssapi_service.clone(),
            protection,
            nec: self.gssapi_nec,
        }))
    }

    #[cfg(not(feature = "gssapi"))]
    fn with_gssapi(&self, chain: Chain) -> anyhow::Result<Chain> {
        if self.gssapi {
            bail!("--socks5-gssapi: this build has no GSS-API support (cargo feature gssapi)");
        }
        Ok(chain)
    }
}

/// Says, when the chain has an HTTP proxy, that what runs through it gets TCP only: its
/// UDP (DNS over UDP too) and ICMP will be refused — said once, as the URL is read, rather
/// than found out flow by flow.
pub(crate) fn note_tcp_only(chain: &Chain, command: &str) {
    if let Some(why) = socksgate_proto::hop::beyond_tcp_refusal(chain.hops(), "UDP or ICMP") {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("socksgate {command}: only TCP will pass: {why}\n"),
        );
    }
}

/// A target given as a host (a name, an IPv4 or a bare IPv6 address) and a port.
pub(crate) fn target(host: &str, port: u16) -> anyhow::Result<socksgate_proto::Address> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| crate::exit::usage(format!("{host}:{port} is not a valid target")))
}

pub(crate) fn chain(urls: &[String]) -> anyhow::Result<Chain> {
    let mut source = "-x";
    let urls: Vec<String> = if urls.is_empty() {
        let Some((variable, value)) = ENVIRONMENT
            .iter()
            // A variable with no URL in it (empty, or only commas) is no proxy, as curl
            // reads an empty one: the next one counts. Never an empty chain — that would be
            // no proxy at all, and socksify's traffic would leave directly.
            .find_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|value| value.split(',').any(|url| !url.trim().is_empty()))
                    .map(|value| (*name, value))
            })
        else {
            return Err(crate::exit::usage(
                "no proxy: give -x socks5h://HOST:PORT (or set ALL_PROXY)",
            ));
        };
        source = variable;
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
        .map(|url| {
            // The parser's message quotes the URL (its password hidden) already; say where
            // it came from.
            url.parse::<Hop>().map_err(|error| {
                let from = if source == "-x" {
                    "-x".to_owned()
                } else {
                    format!("the proxy in {source}")
                };
                crate::exit::usage(format!("{from}: {error}"))
            })
        })
        .collect()
}
