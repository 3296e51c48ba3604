//! ICMP on a client's behalf (socksgate's extension, `docs/extensions/icmp.md`): echo
//! messages and the errors that quote them (`packet`), and the socket one session sends
//! its probes on (`socket`).

mod packet;
mod socket;

pub(crate) use packet::Answer;
pub(crate) use socket::{Prober, MAX_PAYLOAD};
