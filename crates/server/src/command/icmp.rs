//! ICMP ECHO (socksgate's extension, command 0xF8): echo requests to the target on the
//! client's behalf, and what answers them, as framed messages over the session's TCP
//! connection. Through a route, the command goes to the upstream and the messages are
//! relayed like a CONNECT's bytes.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::{Address, DecodeError, Host, Reply, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{established, through_route, Established};
use crate::authorize::Grant;
use crate::failure::Failure;
use crate::icmp::{Answer, Prober, MAX_PAYLOAD};
use crate::outbound::ConnectError;
use crate::relay::RelayEnd;
use crate::reply;
use crate::requested::Requested;

/// Probes remembered for their round-trip time; older ones' answers are not reported
/// (a client waits a few seconds at most for one).
const MAX_PENDING: usize = 256;

/// The smallest answer buffer: room for an error message quoting a probe (ICMPv6 quotes up
/// to 1,280 bytes, RFC 4443 §2.4) and IP headers.
const MIN_BUFFER: usize = 2048;
/// Room for headers around a payload in the answer buffer.
const HEADROOM: usize = 128;

/// What an ICMP session leads to.
pub(crate) enum IcmpSession {
    /// Routed: the upstream speaks the extension; the messages are relayed as bytes.
    Routed(Established),
    /// Served here, to its end.
    Ended(RelayEnd),
}

pub(crate) async fn icmp(mut session: Requested<'_>, grant: Grant) -> Result<IcmpSession, Failure> {
    let shared = session.shared;
    if let Some(route) = grant.route.clone() {
        let target = session.request.target.clone();
        let echo = through_route(&mut session, &route, &grant.outbound, |chain| {
            let target = target.clone();
            async move { chain.icmp_echo(&target).await }
        })
        .await?;
        let bound = echo.target().clone();
        // The upstream sends nothing before the first echo request: nothing was read ahead.
        let (upstream, _) = echo.into_parts();
        session
            .reply(Reply::SUCCEEDED, &bound)
            .await
            .map_err(Failure::ClientGone)?;
        return established(&mut session, upstream, grant)
            .await
            .map(IcmpSession::Routed);
    }
    let target = match target_address(&session, &grant).await {
        Ok(target) => target,
        Err(error) => {
            session.refuse(reply::for_connect_error(&error)).await;
            return Err(Failure::Connect(error));
        }
    };
    let prober = match Prober::open(target, shared.icmp.socket) {
        Ok(prober) => prober,
        Err(error) => {
            tracing::warn!(%error, "cannot send ICMP for a client");
            session.refuse(Reply::GENERAL_FAILURE).await;
            return Err(Failure::Setup(error));
        }
    };
    tracing::debug!(%target, kind = ?prober.kind(), "ICMP session");
    session
        .reply(Reply::SUCCEEDED, &Address::from(SocketAddr::new(target, 0)))
        .await
        .map_err(Failure::ClientGone)?;
    let input = std::mem::take(&mut session.pipelined);
    let mut probes = Probes {
        prober,
        queue: VecDeque::new(),
        pending: VecDeque::new(),
        budget: Budget::new(shared.icmp.rate),
        buffer: vec![0; MIN_BUFFER],
    };
    Ok(IcmpSession::Ended(probes.serve(&mut session, input).await))
}

/// The address to probe: the first one the policy allowed, or the target's (resolved).
async fn target_address(session: &Requested<'_>, grant: &Grant) -> Result<IpAddr, ConnectError> {
    if let Some(first) = grant.addresses.as_ref().and_then(|found| found.first()) {
        return Ok(first.ip());
    }
    let shared = session.shared;
    match &session.request.target.host {
        Host::Ip(ip) => Ok(*ip),
        Host::Domain(name) => {
            let resolving = shared.resolver.resolve(name, 0);
            let resolved = tokio::time::timeout(shared.timeouts.connect, resolving)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                .map_err(ConnectError::Resolve)?;
            resolved
                .first()
                .map(|address| address.ip().to_canonical())
                .ok_or_else(|| ConnectError::Resolve(io::Error::other("no address")))
        }
    }
}

/// An echo request the client asked for, waiting for the session's rate to allow it.
struct Queued {
    seq: u16,
    ttl: u8,
    data: Vec<u8>,
}

/// One session's probes: waiting, in flight, answered.
struct Probes {
    prober: Prober,
    /// Requests over the rate wait here (at most a second's worth; more are dropped, as a
    /// rate-limited router drops them), so a burst like traceroute's is paced, not lost.
    queue: VecDeque<Queued>,
    /// Sequence number and send time of recent probes, oldest first.
    pending: VecDeque<(u16, Instant)>,
    budget: Budget,
    /// Where answers are read: as large as the largest probe sent, plus headers.
    buffer: Vec<u8>,
}

impl Probes {
    /// Reads the client's echo requests and sends them, and sends back the answers, until
    /// the client closes, breaks the framing, or is idle for the idle timeout.
    async fn serve(&mut self, session: &mut Requested<'_>, mut input: Vec<u8>) -> RelayEnd {
        let idle = session.shared.timeouts.idle;
        let mut last_request = Instant::now();
        loop {
            // Every whole message the client has sent so far.
            loop {
                match IcmpMessage::decode(&input) {
                    Ok((message, used)) => {
                        input.drain(..used);
                        session.record.counters.add_up(used);
                        last_request = Instant::now();
                        if let IcmpMessage::EchoRequest { seq, ttl, data } = message {
                            // Sent at once when the rate allows: the queue holds only the
                            // requests that must wait.
                            self.enqueue(Queued { seq, ttl, data });
                            if let Err(error) = self.send_allowed(session).await {
                                return RelayEnd::Error(error);
                            }
                        }
                    }
                    Err(DecodeError::Incomplete { .. }) => break,
                    Err(DecodeError::Invalid(error)) => {
                        return RelayEnd::Error(io::Error::new(io::ErrorKind::InvalidData, error))
                    }
                }
            }
            if let Err(error) = self.send_allowed(session).await {
                return RelayEnd::Error(error);
            }
            let idle_left = idle.map(|idle| idle.saturating_sub(last_request.elapsed()));
            let next_send = (!self.queue.is_empty()).then(|| self.budget.ready_at());
            let answer = tokio::select! {
                read = session.client.read_buf(&mut input) => match read {
                    Ok(0) => return RelayEnd::Closed,
                    Ok(_) => continue,
                    Err(error) => return RelayEnd::Error(error),
                },
                answer = self.prober.recv(&mut self.buffer) => match answer {
                    Ok(answer) => answer,
                    Err(error) => return RelayEnd::Error(error),
                },
                () = sleep_until_or_never(next_send) => continue,
                () = sleep_until_or_never(idle_left.map(|left| Instant::now() + left)) => {
                    return RelayEnd::Idle
                }
            };
            let Some(message) = self.report(answer) else {
                continue;
            };
            if let Err(error) = deliver(session, &message).await {
                return RelayEnd::Error(error);
            }
        }
    }

    fn enqueue(&mut self, request: Queued) {
        if request.data.len() > MAX_PAYLOAD || self.queue.len() >= self.budget.burst() {
            tracing::debug!(
                seq = request.seq,
                "ICMP probe dropped (too long, or over the rate)"
            );
            return;
        }
        self.queue.push_back(request);
    }

    /// Sends the queued probes the rate allows now. A probe the server's own network stack
    /// refuses (no route) is answered at once, as unreachable from the unspecified address
    /// (`docs/extensions/icmp.md`).
    async fn send_allowed(&mut self, session: &mut Requested<'_>) -> io::Result<()> {
        while !self.queue.is_empty() && self.budget.take(Instant::now()) {
            let Some(request) = self.queue.pop_front() else {
                break;
            };
            if let Some(refused) = self.send(request).await {
                deliver(session, &refused).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, request: Queued) -> Option<IcmpMessage> {
        let Queued { seq, ttl, data } = request;
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((seq, Instant::now()));
        if self.buffer.len() < data.len() + HEADROOM {
            self.buffer.resize(data.len() + HEADROOM, 0);
        }
        let error = self.prober.send(seq, ttl, &data).await.err()?;
        tracing::debug!(seq, %error, "ICMP probe not sent");
        let codes = match error.kind() {
            io::ErrorKind::NetworkUnreachable => UNREACHABLE_NET,
            io::ErrorKind::HostUnreachable => UNREACHABLE_HOST,
            io::ErrorKind::PermissionDenied => UNREACHABLE_PROHIBITED,
            _ => return None,
        };
        let (code, unspecified) = match self.prober.target() {
            IpAddr::V4(_) => (codes.0, IpAddr::from([0u8; 4])),
            IpAddr::V6(_) => (codes.1, IpAddr::from([0u8; 16])),
        };
        self.report(Answer::Unreachable {
            seq,
            code,
            from: unspecified,
        })
    }

    /// The message for an answer, with its round-trip time; `None` for an answer to no
    /// remembered probe (a duplicate, or a very late one).
    fn report(&mut self, answer: Answer) -> Option<IcmpMessage> {
        let seq = match &answer {
            Answer::Echo { seq, .. }
            | Answer::TimeExceeded { seq, .. }
            | Answer::Unreachable { seq, .. } => *seq,
        };
        let index = self.pending.iter().rposition(|(sent, _)| *sent == seq)?;
        let (_, sent_at) = self.pending.remove(index)?;
        let rtt_micros = u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX);
        let from = |ip: IpAddr| Address::from(SocketAddr::new(ip, 0));
        Some(match answer {
            Answer::Echo { seq, ttl, data } => IcmpMessage::EchoReply {
                seq,
                ttl,
                rtt_micros,
                data,
            },
            Answer::TimeExceeded { seq, from: router } => IcmpMessage::TimeExceeded {
                seq,
                rtt_micros,
                from: from(router),
            },
            Answer::Unreachable {
                seq,
                code,
                from: router,
            } => IcmpMessage::Unreachable {
                seq,
                code,
                rtt_micros,
                from: from(router),
            },
        })
    }
}

/// Destination-unreachable codes (ICMP, ICMPv6) for a send the server's stack refused:
/// network, host, administratively prohibited.
const UNREACHABLE_NET: (u8, u8) = (0, 0);
const UNREACHABLE_HOST: (u8, u8) = (1, 3);
const UNREACHABLE_PROHIBITED: (u8, u8) = (13, 1);

/// Writes one message to the client, counting its bytes.
async fn deliver(session: &mut Requested<'_>, message: &IcmpMessage) -> io::Result<()> {
    let mut out = Vec::new();
    message.encode(&mut out);
    session.client.write_all(&out).await?;
    session.client.flush().await?;
    session.record.counters.add_down(out.len());
    Ok(())
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// A token bucket of echo requests: `rate` per second, bursts of up to `rate`.
struct Budget {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next request will be allowed.
    fn ready_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(missing / self.rate)
    }

    /// How many requests may wait for the rate: a second's worth.
    fn burst(&self) -> usize {
        self.rate as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_burst_of_rate_then_rate_per_second() {
        let start = Instant::now();
        let mut budget = Budget::new(3);
        budget.at = start;
        let allowed = (0..10).filter(|_| budget.take(start)).count();
        assert_eq!(allowed, 3);
        assert!(!budget.take(start + Duration::from_millis(300)));
        let ready = budget.ready_at();
        assert!(
            ready > start + Duration::from_millis(330)
                && ready < start + Duration::from_millis(340)
        );
        assert!(budget.take(start + Duration::from_millis(340)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| budget.take(later)).count(), 3);
    }
}
