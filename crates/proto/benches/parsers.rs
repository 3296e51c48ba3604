//! Micro-benchmarks of the hot parsing paths: the server handshake a CONNECT goes through,
//! a request on its own, and the UDP header every relayed datagram is split at.
//!
//! `cargo bench -p socksgate-proto`. Figures belong in docs/performance.md, never in tests.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use criterion::{criterion_main, Criterion, Throughput};
use socksgate_proto::server::{ServerEvent, ServerHandshake, ServerOptions};
use socksgate_proto::udp::UdpHeader;
use socksgate_proto::v5::Request;
use socksgate_proto::{Address, Reply, Step, Wire};

/// Greeting (no authentication) and CONNECT to 127.0.0.1:80, as one pipelined read.
const CONNECT_IPV4: &[u8] = &[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80];

/// Greeting and CONNECT to example.com:443 (ATYP 3).
const CONNECT_DOMAIN: &[u8] = &[
    5, 1, 0, 5, 1, 0, 3, 11, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm', 1,
    187,
];

/// Runs the server machine over a whole handshake, up to the reply; returns the reply's
/// length so nothing is optimised away.
fn handshake(input: &[u8]) -> usize {
    let mut machine = ServerHandshake::new(ServerOptions::default());
    let mut rest = input;
    loop {
        match machine.feed(rest) {
            Ok(Step::Event { used, event }) => {
                rest = &rest[used..];
                if let ServerEvent::Request(_) = event {
                    let bound = Address::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)));
                    let _ = machine.reply(Reply::SUCCEEDED, &bound);
                    return machine.pending_output().len();
                }
            }
            _ => return 0,
        }
    }
}

fn server_handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("server handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("CONNECT IPv4", |b| {
        b.iter(|| handshake(black_box(CONNECT_IPV4)))
    });
    group.bench_function("CONNECT domain", |b| {
        b.iter(|| handshake(black_box(CONNECT_DOMAIN)))
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    let ipv4 = &CONNECT_IPV4[3..];
    let domain = &CONNECT_DOMAIN[3..];
    c.bench_function("request decode IPv4", |b| {
        b.iter(|| Request::decode(black_box(ipv4)))
    });
    c.bench_function("request decode domain", |b| {
        b.iter(|| Request::decode(black_box(domain)))
    });
}

fn udp_header(c: &mut Criterion) {
    let mut datagram = vec![0, 0, 0, 1, 127, 0, 0, 1, 0, 53];
    datagram.extend_from_slice(&[0xAB; 64]);
    let mut group = c.benchmark_group("udp header");
    group.throughput(Throughput::Elements(1));
    group.bench_function("split 64 B datagram", |b| {
        b.iter(|| UdpHeader::split(black_box(&datagram)).map(|(_, payload)| payload.len()))
    });
    let header = UdpHeader::new(Address::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 53))));
    group.bench_function("encode header", |b| {
        let mut out = Vec::with_capacity(32);
        b.iter(|| {
            out.clear();
            black_box(&header).encode(&mut out);
            out.len()
        })
    });
    group.finish();
}

// In a private module: the macro defines an undocumented public `benches` function.
mod group {
    use super::{request, server_handshake, udp_header};
    criterion::criterion_group!(benches, server_handshake, request, udp_header);
}
use group::benches;

criterion_main!(benches);
