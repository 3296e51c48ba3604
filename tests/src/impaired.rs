//! A link between two test namespaces that loses, delays and reorders packets, the way
//! `tc qdisc … netem` would. The kernels these tests run on are built without `sch_netem`
//! (nor `fq`, nor BPF classifiers), so the impairment is done here: each namespace gets a
//! TUN interface, and a task per direction moves every IP packet from one to the other
//! through a delay line that drops and reorders some. The two kernels' TCP stacks see a
//! real lossy path; nothing leaves the two namespaces.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};
use tun::AsyncDevice;

use crate::NetNs;

/// What happens to each packet, in each direction on its own.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Percent of packets dropped.
    pub loss_percent: u32,
    /// How long each packet that is neither dropped nor reordered is held.
    pub delay: Duration,
    /// Percent of packets held `reorder_by` longer, so that the packets after them
    /// overtake them.
    pub reorder_percent: u32,
    /// How much longer a reordered packet is held.
    pub reorder_by: Duration,
}

/// What one direction did, for a test to check that the link really was impaired.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Packets read from the sending side.
    pub packets: u64,
    /// Of those, dropped.
    pub dropped: u64,
    /// Of those, held back behind later ones.
    pub reordered: u64,
}

/// The running link. [`ImpairedLink::stop`] (or dropping it) ends the forwarding; the
/// interfaces go with their namespaces.
pub struct ImpairedLink {
    stop: Arc<Notify>,
    forwarder: Option<JoinHandle<[Tally; 2]>>,
}

/// The interface name on both sides.
const INTERFACE: &str = "sgimpair";
const MTU: u16 = 1500;

impl ImpairedLink {
    /// Joins `left` (address `left_address`) and `right` (`right_address`) point to point,
    /// both directions impaired alike. `seed` makes a run's drops repeatable.
    pub fn between(
        (left, left_address): (&NetNs, &str),
        (right, right_address): (&NetNs, &str),
        impairment: Impairment,
        seed: u64,
    ) -> Self {
        let left_device = left.run(create_device);
        let right_device = right.run(create_device);
        for (namespace, address, peer) in [
            (left, left_address, right_address),
            (right, right_address, left_address),
        ] {
            namespace.ip(&format!("addr add {address} peer {peer} dev {INTERFACE}"));
        }
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let forwarder = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let left = AsyncDevice::new(left_device).unwrap();
                let right = AsyncDevice::new(right_device).unwrap();
                let mut tallies = [Tally::default(); 2];
                let [there, back] = &mut tallies;
                tokio::select! {
                    () = stopped.notified() => {}
                    () = forward(&left, &right, impairment, seed, there) => {}
                    () = forward(&right, &left, impairment, !seed, back) => {}
                }
                tallies
            })
        });
        Self {
            stop,
            forwarder: Some(forwarder),
        }
    }

    /// Stops forwarding and says what each direction did (left to right first).
    pub fn stop(mut self) -> [Tally; 2] {
        self.stop.notify_one();
        self.forwarder.take().unwrap().join().unwrap()
    }
}

impl Drop for ImpairedLink {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(forwarder) = self.forwarder.take() {
            let _ = forwarder.join();
        }
    }
}

/// A TUN interface (raw IP packets), up, in the calling thread's namespace.
fn create_device() -> tun::Device {
    let mut config = tun::Configuration::default();
    config.tun_name(INTERFACE).mtu(MTU).up();
    tun::create(&config).unwrap()
}

/// Moves packets from `from` to `to`, each dropped, held for the delay or sent at once;
/// returns only if a device fails.
async fn forward(
    from: &AsyncDevice,
    to: &AsyncDevice,
    impairment: Impairment,
    seed: u64,
    tally: &mut Tally,
) {
    let mut random = XorShift(seed | 1);
    // Two delays, one queue each: each queue's packets are due in the order they came, and
    // what is due first leaves first. (Sending reordered packets *early* instead, as netem's
    // `reorder` does, gives TCP a false minimum round trip of zero, which stalls BBR.)
    let mut on_time: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut late: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buffer = vec![0u8; usize::from(MTU) + 64];
    loop {
        let next_due = [on_time.front(), late.front()]
            .into_iter()
            .flatten()
            .map(|(due, _)| *due)
            .min();
        tokio::select! {
            received = from.recv(&mut buffer) => {
                let Ok(length) = received else { return };
                tally.packets += 1;
                let packet = buffer[..length].to_vec();
                if random.percent() < impairment.loss_percent {
                    tally.dropped += 1;
                } else if random.percent() < impairment.reorder_percent {
                    tally.reordered += 1;
                    late.push_back((Instant::now() + impairment.delay + impairment.reorder_by, packet));
                } else {
                    on_time.push_back((Instant::now() + impairment.delay, packet));
                }
            }
            () = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                for queue in [&mut on_time, &mut late] {
                    while queue.front().is_some_and(|(due, _)| *due <= now) {
                        if let Some((_, packet)) = queue.pop_front() {
                            send(to, &packet).await;
                        }
                    }
                }
            }
        }
    }
}

/// Writes one packet; one the other side's kernel cannot take is lost, as on a real link.
async fn send(to: &AsyncDevice, packet: &[u8]) {
    let _ = to.send(packet).await;
}

/// A small deterministic generator: the drops are random enough for TCP and repeatable.
struct XorShift(u64);

impl XorShift {
    fn percent(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 100) as u32
    }
}
