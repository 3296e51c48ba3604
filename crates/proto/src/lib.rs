//! SOCKS4, SOCKS4a and SOCKS5 without I/O.
//!
//! This crate is the one place where socksgate knows the SOCKS wire format. The tokio server,
//! the tokio client and the LD_PRELOAD shim all drive the same code:
//!
//! * messages, each with a decoder and an encoder ([`Wire`]): SOCKS5 ([`v5`], RFC 1928),
//!   username/password ([`password`], RFC 1929), GSS-API framing ([`gssapi`], RFC 1961), the UDP
//!   relay header ([`udp`], RFC 1928 §7), SOCKS4 and SOCKS4a ([`v4`]);
//! * two handshake state machines, [`server::ServerHandshake`] and
//!   [`client::ClientHandshake`]: bytes in, bytes to send and events out.
//!
//! It also holds the addresses every message carries ([`addr`]), socksgate's ICMP extension
//! messages ([`icmp`]), HAProxy's PROXY header v1 and v2 ([`proxy_header`]), and reads proxy
//! URLs ([`hop::Hop`]: `socks5h://user:pass@host:port`), which every client of socksgate
//! understands.
//!
//! Contract: nothing here reads a socket, a file or a clock, spawns, or allocates per byte.
//! Decoders tell "need more bytes" ([`DecodeError::Incomplete`], with how many) from
//! "invalid" ([`DecodeError::Invalid`]), never read past the message they recognise, and
//! never panic, whatever the input. Wire codes are open newtypes: an unknown byte from a
//! peer is a value, not an error, until a machine decides what to do with it.

#![forbid(unsafe_code)]

pub mod addr;
pub mod client;
pub mod gssapi;
mod handshake;
pub mod hop;
pub mod icmp;
pub mod password;
pub mod proxy_header;
pub mod server;
pub mod udp;
pub mod v4;
pub mod v5;
mod wire;

pub use addr::{AddrType, Address, DomainName, Host};
pub use handshake::{Methods, Step, Version};
pub use v5::{Command, Method, Reply};
pub use wire::{DecodeError, ProtocolError, Wire};
