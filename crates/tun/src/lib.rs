//! socksgate's TUN mode: a program runs in a network namespace of its own whose default
//! route is a TUN device; a user-space TCP/IP stack reads its packets and turns each flow
//! into a SOCKS session through a chain — TCP into CONNECT, UDP into UDP ASSOCIATE, ICMP
//! echo into socksgate's ICMP extension — and answers its DNS queries with fake addresses
//! that stand for names the proxy resolves. Unlike `LD_PRELOAD`, this catches statically
//! linked programs, Go binaries and anything else that makes system calls directly. With
//! [`routing`] (`socksgate tun`), the namespace socksgate itself runs in (a host, a
//! container) is captured instead, by policy routing.

mod dns;
mod icmp;
pub mod namespace;
pub mod routing;
mod stack;

pub use stack::serve;
/// The TUN device a session's stack reads (made by [`namespace::isolate_thread`]).
pub use tun::Device;
