//! HTTP/1.1 as a proxy speaks it, without I/O: what socksgate needs to serve HTTP proxy
//! clients on its SOCKS listeners and to pass through HTTP proxies as chain hops.
//!
//! - [`request`]: a client's request head, parsed by `httparse` and then checked the way
//!   RFC 9112 asks of an intermediary that must not be used for request smuggling (§6.3,
//!   §11.2): one framing only, no obs-fold, bounded lines and heads; its target
//!   (authority-form for CONNECT, absolute-form `http://` for forwarding) and its
//!   `Proxy-Authorization: Basic` credentials (RFC 7617).
//! - [`response`]: a target's response head and how its body ends (§6.3).
//! - [`chunked`]: the chunked transfer coding, scanned strictly so that the proxy knows
//!   where a body ends whatever it forwards.
//! - [`forward`]: the heads socksgate sends on, without hop-by-hop fields (RFC 9110
//!   §7.6.1), with `Via`.
//! - [`status`]: socksgate's own answers (400, 403, 407, 502, …), each with a one-line body.
//! - [`tunnel`]: the client side of CONNECT, for HTTP proxies as hops of a chain.
//!
//! Every error a peer's bytes can cause is a value ([`HttpError`] names the status to
//! answer with); nothing here panics on input.

pub mod chunked;
pub mod forward;
pub mod request;
pub mod response;
pub mod status;
pub mod tunnel;

mod fields;

pub use fields::Header;
pub use request::{Framing, RequestHead, Target};
pub use status::HttpError;

/// Whether `byte` can begin an HTTP request: a method is a token (RFC 9110 §9.1), and
/// every registered one is upper-case letters. SOCKS begins with 0x04 or 0x05, TLS with
/// 0x16: none is a letter, so the first byte tells the protocols apart.
pub fn starts_request(byte: u8) -> bool {
    byte.is_ascii_uppercase()
}
