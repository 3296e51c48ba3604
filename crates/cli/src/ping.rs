//! `socksgate ping`: echo requests to a host, sent by the proxy (socksgate's ICMP
//! extension), reported as iputils' ping reports them.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::Host;

use crate::icmp::{self, FAILED, NO_REPLY};
use crate::proxies::ProxyArgs;

/// Send ICMP echo requests to HOST from the last proxy of the chain, as ping does.
///
/// The proxy must offer socksgate's ICMP extension (`[icmp] enabled = true` on a socksgate
/// server). Exit code 0 when a reply came back, 1 when none did, 2 for other errors.
#[derive(Debug, clap::Args)]
pub(crate) struct Ping {
    #[command(flatten)]
    proxies: ProxyArgs,
    /// Stop after sending COUNT requests (and waiting for their replies).
    #[arg(short = 'c', value_name = "COUNT")]
    count: Option<u64>,
    /// Seconds between requests.
    #[arg(short = 'i', value_name = "SECONDS", default_value = "1", value_parser = icmp::seconds)]
    interval: Duration,
    /// Seconds to wait for replies after the last request.
    #[arg(short = 'W', value_name = "SECONDS", default_value = "5", value_parser = icmp::seconds)]
    wait: Duration,
    /// Bytes of data in each request.
    #[arg(short = 's', value_name = "SIZE", default_value_t = 56,
          value_parser = clap::value_parser!(u16).range(0..=65_507))]
    size: u16,
    /// The requests' TTL (IPv6 hop limit); the proxy's default when not given.
    #[arg(short = 't', value_name = "TTL", value_parser = clap::value_parser!(u8).range(1..))]
    ttl: Option<u8>,
    /// The host to ping (a name is resolved by the proxy).
    host: String,
}

pub(crate) fn run(request: &Ping) -> ExitCode {
    let outcome = icmp::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(ping(request)));
    match outcome {
        Ok(stats) if stats.received > 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(NO_REPLY),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "socksgate ping: {error:#}");
            ExitCode::from(FAILED)
        }
    }
}

/// What the summary reports.
#[derive(Debug, Default)]
struct Stats {
    transmitted: u64,
    received: u64,
    errors: u64,
    /// Round-trip times of the replies, in microseconds.
    rtts: Vec<u32>,
}

async fn ping(request: &Ping) -> anyhow::Result<Stats> {
    let chain = request.proxies.chain_beyond_tcp("ICMP")?;
    let mut echo = icmp::open(&chain, &icmp::target(&request.host)?).await?;
    let v6 = matches!(echo.target().host, Host::Ip(std::net::IpAddr::V6(_)));
    let proxy = chain
        .hops()
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    let probed = icmp::probed(&echo);
    icmp::say(&format!(
        "PING {} ({probed}) {} data bytes via {proxy}",
        request.host, request.size
    ));
    let payload: Vec<u8> = (0..request.size).map(|i| i as u8).collect();
    let ttl = request.ttl.unwrap_or(0);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut seq: u16 = 1;
    let mut next_send = tokio::time::Instant::now();
    let mut last_wait: Option<tokio::time::Instant> = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let sending = request.count.is_none_or(|count| stats.transmitted < count);
        tokio::select! {
            () = tokio::time::sleep_until(next_send), if sending => {
                echo.send(seq, ttl, &payload).await?;
                stats.transmitted += 1;
                seq = seq.wrapping_add(1);
                next_send += request.interval;
                if request.count.is_some_and(|count| stats.transmitted >= count) {
                    last_wait = Some(tokio::time::Instant::now() + request.wait);
                }
            }
            message = echo.recv() => {
                let message = message.map_err(|error| {
                    anyhow::anyhow!("the proxy ended the session: {error}")
                })?;
                report(&message, &payload, &probed, v6, &mut stats);
                let answered = stats.received + stats.errors;
                if !sending && answered >= stats.transmitted {
                    break;
                }
            }
            () = sleep_until_or_never(last_wait) => break,
            _ = &mut interrupted => break,
        }
    }
    summary(&request.host, &stats, started.elapsed());
    Ok(stats)
}

/// Prints one answer as ping does (an echo reply comes from the probed address, the
/// session's only destination).
fn report(message: &IcmpMessage, payload: &[u8], probed: &str, v6: bool, stats: &mut Stats) {
    match message {
        IcmpMessage::EchoReply {
            seq,
            ttl,
            rtt_micros,
            data,
        } => {
            stats.received += 1;
            stats.rtts.push(*rtt_micros);
            let ttl = if *ttl == 0 {
                String::new()
            } else {
                format!(" ttl={ttl}")
            };
            let wrong = if data.as_slice() == payload {
                ""
            } else {
                " (wrong data)"
            };
            icmp::say(&format!(
                "{} bytes from {}: icmp_seq={seq}{ttl} time={} ms{wrong}",
                data.len() + 8,
                probed,
                icmp::millis(*rtt_micros)
            ));
        }
        IcmpMessage::TimeExceeded { seq, from, .. } => {
            stats.errors += 1;
            icmp::say(&format!(
                "From {} icmp_seq={seq} Time to live exceeded",
                icmp::node(from)
            ));
        }
        IcmpMessage::Unreachable {
            seq, code, from, ..
        } => {
            stats.errors += 1;
            icmp::say(&format!(
                "From {} icmp_seq={seq} {}",
                icmp::node(from),
                icmp::unreachable_words(v6, *code)
            ));
        }
        IcmpMessage::EchoRequest { .. } | IcmpMessage::Unknown { .. } => {}
    }
}

fn summary(host: &str, stats: &Stats, elapsed: Duration) {
    icmp::say(&format!("\n--- {host} ping statistics ---"));
    let lost = stats.transmitted.saturating_sub(stats.received);
    let loss = if stats.transmitted == 0 {
        0.0
    } else {
        (lost as f64 * 100.0 / stats.transmitted as f64 * 10_000.0).round() / 10_000.0
    };
    let errors = if stats.errors > 0 {
        format!(", +{} errors", stats.errors)
    } else {
        String::new()
    };
    icmp::say(&format!(
        "{} packets transmitted, {} received{errors}, {loss}% packet loss, time {}ms",
        stats.transmitted,
        stats.received,
        elapsed.as_millis()
    ));
    if stats.rtts.is_empty() {
        return;
    }
    let rtts: Vec<f64> = stats
        .rtts
        .iter()
        .map(|&us| f64::from(us) / 1000.0)
        .collect();
    let count = rtts.len() as f64;
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().copied().fold(0.0, f64::max);
    let mean = rtts.iter().sum::<f64>() / count;
    let mean_square = rtts.iter().map(|rtt| rtt * rtt).sum::<f64>() / count;
    let mdev = (mean_square - mean * mean).max(0.0).sqrt();
    icmp::say(&format!(
        "rtt min/avg/max/mdev = {min:.3}/{mean:.3}/{max:.3}/{mdev:.3} ms"
    ));
}

async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
