//! The DNS server of a TUN session: every name gets an address of its own from a private
//! pool (198.18.0.0/15, RFC 2544's benchmarking block, as fake-IP proxies use), so that a
//! connection to that address can be sent to the proxy under its name, for the proxy to
//! resolve. Only A queries are answered with an address; every other type gets an empty
//! answer (NOERROR, no records), so programs fall back to IPv4.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The first and last address handed out (198.18.1.0 – 198.19.255.254): the low 256 are
/// the session's own (the device, the DNS server).
const POOL_FIRST: u32 = u32::from_be_bytes([198, 18, 1, 0]);
const POOL_LAST: u32 = u32::from_be_bytes([198, 19, 255, 254]);

/// Seconds a program may keep an answer (the mapping lasts for the whole session).
const ANSWER_TTL: u32 = 60;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const HEADER: usize = 12;

/// Names and the fake addresses given to them, both ways.
#[derive(Debug)]
pub(crate) struct FakeDns {
    by_name: HashMap<String, Ipv4Addr>,
    by_address: HashMap<Ipv4Addr, String>,
    next: u32,
}

impl Default for FakeDns {
    fn default() -> Self {
        Self {
            by_name: HashMap::new(),
            by_address: HashMap::new(),
            next: POOL_FIRST,
        }
    }
}

impl FakeDns {
    /// Whether `address` is one this server hands out.
    pub(crate) fn is_fake(address: Ipv4Addr) -> bool {
        (POOL_FIRST..=POOL_LAST).contains(&u32::from(address))
    }

    /// The name a fake address was given for.
    pub(crate) fn name_of(&self, address: Ipv4Addr) -> Option<&str> {
        self.by_address.get(&address).map(String::as_str)
    }

    /// The answer to a DNS query (RFC 1035 §4.1), or `None` for a message that is not a
    /// query this server can answer at all (it is dropped, as a server drops garbage).
    pub(crate) fn answer(&mut self, query: &[u8]) -> Option<Vec<u8>> {
        let header = query.get(..HEADER)?;
        let is_query = header[2] & 0x80 == 0;
        let question_count = u16::from_be_bytes([header[4], header[5]]);
        if !is_query || question_count != 1 {
            return None;
        }
        let (name, end) = read_name(query, HEADER)?;
        let fields = query.get(end..end + 4)?;
        let kind = u16::from_be_bytes([fields[0], fields[1]]);
        let class = u16::from_be_bytes([fields[2], fields[3]]);
        let question = &query[HEADER..end + 4];
        let mut reply = Vec::with_capacity(question.len() + 32);
        reply.extend_from_slice(&header[..2]);
        // QR, the opcode and RD as asked, RA; RCODE 0.
        reply.push(0x80 | (header[2] & 0x79));
        reply.push(0x80);
        let answers = u16::from(kind == TYPE_A && class == CLASS_IN);
        for count in [1, answers, 0, 0] {
            reply.extend_from_slice(&u16::to_be_bytes(count));
        }
        reply.extend_from_slice(question);
        if answers == 1 {
            let address = self.address_for(&name);
            reply.extend_from_slice(&[0xc0, HEADER as u8]); // the name in the question
            reply.extend_from_slice(&TYPE_A.to_be_bytes());
            reply.extend_from_slice(&CLASS_IN.to_be_bytes());
            reply.extend_from_slice(&ANSWER_TTL.to_be_bytes());
            reply.extend_from_slice(&4u16.to_be_bytes());
            reply.extend_from_slice(&address.octets());
        }
        Some(reply)
    }

    /// The address of `name`, given now if it has none; when the pool is used up, the
    /// oldest name's address is given again.
    fn address_for(&mut self, name: &str) -> Ipv4Addr {
        if let Some(address) = self.by_name.get(name) {
            return *address;
        }
        let address = Ipv4Addr::from(self.next);
        self.next = if self.next == POOL_LAST {
            POOL_FIRST
        } else {
            self.next + 1
        };
        if let Some(old) = self.by_address.insert(address, name.to_owned()) {
            self.by_name.remove(&old);
        }
        self.by_name.insert(name.to_owned(), address);
        address
    }
}

/// A name in uncompressed labels (a question's) starting at `at`: the name in lower case
/// without the final dot, and where it ends.
fn read_name(message: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let length = usize::from(*message.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        // Compression in a question is legal but never sent by resolvers; 64+ is a pointer
        // or reserved.
        if length > 63 || name.len() + length > 253 {
            return None;
        }
        let label = message.get(at..at + length)?;
        if !label
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(
            label
                .iter()
                .map(|&byte| char::from(byte.to_ascii_lowercase())),
        );
        at += length;
    }
    (!name.is_empty()).then_some((name, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as `dig` sends it: id, RD, one question.
    fn query(id: u16, name: &str, kind: u16) -> Vec<u8> {
        let mut message = id.to_be_bytes().to_vec();
        message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&kind.to_be_bytes());
        message.extend_from_slice(&CLASS_IN.to_be_bytes());
        message
    }

    #[test]
    fn a_queries_get_one_stable_fake_address_per_name() {
        let mut dns = FakeDns::default();
        let reply = dns.answer(&query(0x1234, "Target.Test", TYPE_A)).unwrap();
        assert_eq!(&reply[..2], &[0x12, 0x34]);
        assert_eq!(reply[2] & 0x80, 0x80, "a response");
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&reply[6..8], &[0, 1], "one answer");
        let address = Ipv4Addr::from(<[u8; 4]>::try_from(&reply[reply.len() - 4..]).unwrap());
        assert!(FakeDns::is_fake(address));
        assert_eq!(dns.name_of(address), Some("target.test"));
        let again = dns.answer(&query(7, "target.test", TYPE_A)).unwrap();
        assert_eq!(&again[again.len() - 4..], &address.octets());
        let other = dns.answer(&query(8, "other.test", TYPE_A)).unwrap();
        assert_ne!(&other[other.len() - 4..], &address.octets());
    }

    #[test]
    fn other_types_get_an_empty_answer_and_garbage_none() {
        let mut dns = FakeDns::default();
        let aaaa = dns.answer(&query(1, "target.test", 28)).unwrap();
        assert_eq!(&aaaa[6..8], &[0, 0], "no records");
        assert_eq!(aaaa[3] & 0x0f, 0, "NOERROR");
        let mut response = query(1, "target.test", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(dns.answer(&response), None);
        assert_eq!(dns.answer(&[0; 5]), None);
        let mut pointer = query(1, "target.test", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(dns.answer(&pointer), None);
    }

    #[test]
    fn a_used_up_pool_gives_the_oldest_address_again() {
        let mut dns = FakeDns {
            next: POOL_LAST,
            ..FakeDns::default()
        };
        let last = dns.address_for("a.test");
        let first = dns.address_for("b.test");
        assert_eq!((u32::from(last), u32::from(first)), (POOL_LAST, POOL_FIRST));
        dns.next = POOL_LAST;
        let reused = dns.address_for("c.test");
        assert_eq!(reused, last);
        assert_eq!(dns.name_of(last), Some("c.test"));
        assert_eq!(dns.by_name.get("a.test"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_messages_never_panic(message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = FakeDns::default().answer(&message);
        }
    }
}
