//! A tokio SOCKS client: CONNECT, BIND, UDP ASSOCIATE and socksgate's ICMP echo extension
//! through one proxy or a chain of them, each hop SOCKS4, SOCKS4a or SOCKS5 (with local or
//! remote name resolution; without authentication, with a password or, with the `gssapi`
//! feature, GSS-API; plain or in TLS), driven by `socksgate-proto`'s client machine.
//!
//! ```no_run
//! # async fn example() -> Result<(), socksgate_client::ChainError> {
//! use socksgate_client::Chain;
//! let chain: Chain = ["socks5h://gateway:1080", "socks5://alice:secret@inner:1080"]
//!     .iter()
//!     .map(|url| url.parse().unwrap())
//!     .collect();
//! let stream = chain.connect(&"example.com:443".parse().unwrap()).await?;
//! # Ok(()) }
//! ```
//!
//! Errors say which hop failed and why ([`ChainError`]), with the reply code in words.
//! A `socks5s://` or `socks5hs://` hop is reached over TLS ([`Chain::with_tls`] says how
//! its certificate is checked); the connection comes back as a [`ProxyStream`].

mod chain;
#[cfg(feature = "gssapi")]
mod gss;
mod http_hop;
mod icmp;
mod layered;
mod outbound;
mod stream;
mod udp;
mod watch;

pub use chain::{BindListener, Chain, ChainError, HopFailure, HopTimeouts};
#[cfg(feature = "gssapi")]
pub use gss::GssapiOptions;
pub use icmp::IcmpEcho;
pub use layered::Layered;
pub use outbound::Outbound;
#[cfg(feature = "gssapi")]
pub use socksgate_gssapi::Level as GssapiLevel;
pub use socksgate_proto::hop::{Flavour, Hop, UrlError};
pub use socksgate_tls::{ClientTls, PublicKeyPin, TlsError};
pub use stream::ProxyStream;
pub use udp::UdpChain;
pub use watch::poll_ended;
