//! `socksgate traceroute`: the routers between the proxy and a host, found with echo
//! requests of growing TTL sent by the proxy (socksgate's ICMP extension, as
//! `traceroute -I`), printed as traceroute prints them.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use socksgate_client::IcmpEcho;
use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::Host;

use crate::icmp::{self, FAILED};
use crate::proxies::ProxyArgs;

/// Print the route from the last proxy of the chain to HOST, as `traceroute -I` does.
///
/// The proxy must offer socksgate's ICMP extension (`[icmp] enabled = true` on a socksgate
/// server). Each line is a hop: who answered and each probe's round-trip time, `*` for a
/// probe nobody answered, and !H, !N, !X, !P for unreachable host, network, prohibited,
/// protocol.
#[derive(Debug, clap::Args)]
pub(crate) struct Traceroute {
    #[command(flatten)]
    proxies: ProxyArgs,
    /// The TTL to start with.
    #[arg(short = 'f', value_name = "FIRST_TTL", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..))]
    first: u8,
    /// The largest TTL (hops) to try.
    #[arg(short = 'm', value_name = "MAX_TTL", default_value_t = 30,
          value_parser = clap::value_parser!(u8).range(1..))]
    max: u8,
    /// Probes per hop.
    #[arg(short = 'q', value_name = "NQUERIES", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(1..=10))]
    queries: u8,
    /// Seconds to wait for a hop's answers.
    #[arg(short = 'w', value_name = "SECONDS", default_value = "5", value_parser = icmp::seconds)]
    wait: Duration,
    /// The host to trace (a name is resolved by the proxy).
    host: String,
}

/// IPv4 and ICMP headers, added to the data for the packet size traceroute prints.
const HEADERS: usize = 28;
/// traceroute's default packet: 60 bytes.
const DATA: usize = 60 - HEADERS;

pub(crate) fn run(request: &Traceroute) -> ExitCode {
    let outcome = icmp::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(trace(request)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "socksgate traceroute: {error:#}");
            ExitCode::from(FAILED)
        }
    }
}

/// One probe's answer: who, after how long, and a mark (!H, …) for an unreachable.
#[derive(Debug, Clone, PartialEq)]
struct Heard {
    from: String,
    rtt_micros: u32,
    mark: Option<String>,
    /// The target itself answered, or said it cannot be reached: the trace ends here.
    last: bool,
}

async fn trace(request: &Traceroute) -> anyhow::Result<()> {
    let chain = request.proxies.chain_beyond_tcp("ICMP")?;
    let mut echo = icmp::open(&chain, &icmp::target(&request.host)?).await?;
    let v6 = matches!(echo.target().host, Host::Ip(IpAddr::V6(_)));
    let probed = icmp::probed(&echo);
    icmp::say(&format!(
        "traceroute to {} ({probed}), {} hops max, {} byte packets",
        request.host,
        request.max,
        DATA + HEADERS
    ));
    let payload = vec![0u8; DATA];
    let mut seq: u16 = 1;
    for ttl in request.first..=request.max {
        let first_seq = seq;
        for _ in 0..request.queries {
            echo.send(seq, ttl, &payload).await?;
            seq = seq.wrapping_add(1);
        }
        let heard = listen(&mut echo, first_seq, request, &probed, v6).await?;
        icmp::say(&hop_line(ttl, &heard));
        if heard.iter().flatten().any(|heard| heard.last) {
            break;
        }
    }
    Ok(())
}

/// The answers to one hop's probes (sequence numbers `first_seq…`), in probe order, until
/// all came or the wait ran out.
async fn listen(
    echo: &mut IcmpEcho,
    first_seq: u16,
    request: &Traceroute,
    probed: &str,
    v6: bool,
) -> anyhow::Result<Vec<Option<Heard>>> {
    let mut heard: Vec<Option<Heard>> = vec![None; usize::from(request.queries)];
    let deadline = tokio::time::Instant::now() + request.wait;
    while heard.iter().any(Option::is_none) {
        let message = match tokio::time::timeout_at(deadline, echo.recv()).await {
            Ok(message) => {
                message.map_err(|error| anyhow::anyhow!("the proxy ended the session: {error}"))?
            }
            Err(_) => break,
        };
        // Who answered, and whether the trace ends there (a router passing the probe on
        // does not end it; the target, or an unreachable report, does).
        let (seq, from, rtt_micros, mark, last) = match message {
            IcmpMessage::EchoReply {
                seq, rtt_micros, ..
            } => (seq, probed.to_owned(), rtt_micros, None, true),
            IcmpMessage::TimeExceeded {
                seq,
                rtt_micros,
                from,
            } => (seq, icmp::node(&from), rtt_micros, None, false),
            IcmpMessage::Unreachable {
                seq,
                code,
                rtt_micros,
                from,
            } => {
                let mark = icmp::unreachable_mark(v6, code);
                (seq, icmp::node(&from), rtt_micros, Some(mark), true)
            }
            IcmpMessage::EchoRequest { .. } | IcmpMessage::Unknown { .. } => continue,
        };
        let answer = Heard {
            from,
            rtt_micros,
            mark,
            last,
        };
        let index = usize::from(seq.wrapping_sub(first_seq));
        if let Some(slot) = heard.get_mut(index) {
            *slot = Some(answer);
        }
    }
    Ok(heard)
}

/// ` 2  10.2.0.2  0.412 ms  0.398 ms *`: a node is named when it differs from the one
/// before it on the line.
fn hop_line(ttl: u8, heard: &[Option<Heard>]) -> String {
    let mut line = format!("{ttl:>2} ");
    let mut named: Option<&str> = None;
    for probe in heard {
        match probe {
            None => line.push_str(" *"),
            Some(probe) => {
                if named != Some(probe.from.as_str()) {
                    line.push(' ');
                    line.push_str(&probe.from);
                    named = Some(&probe.from);
                }
                line.push_str("  ");
                line.push_str(&icmp::millis(probe.rtt_micros));
                line.push_str(" ms");
                if let Some(mark) = &probe.mark {
                    line.push(' ');
                    line.push_str(mark);
                }
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(from: &str, rtt_micros: u32) -> Option<Heard> {
        Some(Heard {
            from: from.to_owned(),
            rtt_micros,
            mark: None,
            last: false,
        })
    }

    #[test]
    fn hop_lines_read_like_traceroute() {
        let line = hop_line(2, &[heard("10.2.0.2", 412), None, heard("10.2.0.2", 1_500)]);
        assert_eq!(line, " 2  10.2.0.2  0.412 ms *  1.500 ms");
        let line = hop_line(3, &[heard("10.2.0.2", 1), heard("10.9.0.1", 2)]);
        assert_eq!(line, " 3  10.2.0.2  0.001 ms 10.9.0.1  0.002 ms");
        assert_eq!(hop_line(12, &[None, None, None]), "12  * * *");
    }
}
