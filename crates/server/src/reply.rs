//! The outcome → reply-code table, and the mapping of refusals and connect errors to it.
//! The commands that fail in ways of their own (BIND and UDP set-up, an unknown command,
//! routes) send this table's code for their case directly; a malformed request's 0x08 or
//! 0x01 is queued by `socksgate-proto`'s machine.
//!
//! | outcome | SOCKS5 | SOCKS4 |
//! | --- | --- | --- |
//! | connected | 0x00 succeeded | 0x5A |
//! | target refused the connection | 0x05 connection refused | 0x5B |
//! | no route to the target's network | 0x03 network unreachable | 0x5B |
//! | host unreachable, name does not resolve | 0x04 host unreachable | 0x5B |
//! | no answer within the connect timeout | 0x06 TTL expired | 0x5B |
//! | a firewall rule refused the connection (EACCES/EPERM) | 0x02 not allowed | 0x5B |
//! | command not served | 0x07 command not supported | 0x5B |
//! | address type unknown | 0x08 address type not supported | 0x5B |
//! | refused by the rules or a session limit | 0x02 not allowed | 0x5B |
//! | anything else | 0x01 general failure | 0x5B |
//!
//! A connect timeout is reported as 0x06 rather than 0x04 so that a client can tell a silent
//! target ("TTL expired": the connection attempt ran out of time) from one that the network
//! reported unreachable. SOCKS4 has a single failure code; the mapping to it is done by
//! `socksgate-proto`.

use std::io;

use socksgate_proto::Reply;

use crate::failure::Failure;
use crate::outbound::ConnectError;

/// The reply to a request refused before its command ran (by the rules, a limit, a name
/// that would not resolve).
pub(crate) fn for_refusal(failure: &Failure) -> Reply {
    match failure {
        Failure::Denied(_) => Reply::NOT_ALLOWED,
        Failure::Connect(error) => for_connect_error(error),
        Failure::UnsupportedCommand => Reply::COMMAND_NOT_SUPPORTED,
        _ => Reply::GENERAL_FAILURE,
    }
}

/// The reply for a failed connection attempt.
pub(crate) fn for_connect_error(error: &ConnectError) -> Reply {
    match error {
        ConnectError::Resolve(_) => Reply::HOST_UNREACHABLE,
        ConnectError::TimedOut => Reply::TTL_EXPIRED,
        ConnectError::Connect(error) => for_io_error(error),
    }
}

fn for_io_error(error: &io::Error) -> Reply {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => Reply::CONNECTION_REFUSED,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::NetworkDown => {
            Reply::NETWORK_UNREACHABLE
        }
        io::ErrorKind::HostUnreachable => Reply::HOST_UNREACHABLE,
        io::ErrorKind::TimedOut => Reply::TTL_EXPIRED,
        io::ErrorKind::PermissionDenied => Reply::NOT_ALLOWED,
        _ => Reply::GENERAL_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_map_to_rfc_1928_codes() {
        let cases = [
            (111, Reply::CONNECTION_REFUSED),  // ECONNREFUSED
            (101, Reply::NETWORK_UNREACHABLE), // ENETUNREACH
            (113, Reply::HOST_UNREACHABLE),    // EHOSTUNREACH
            (110, Reply::TTL_EXPIRED),         // ETIMEDOUT
            (13, Reply::NOT_ALLOWED),          // EACCES
            (99, Reply::GENERAL_FAILURE),      // EADDRNOTAVAIL
        ];
        for (errno, reply) in cases {
            let error = ConnectError::Connect(io::Error::from_raw_os_error(errno));
            assert_eq!(for_connect_error(&error), reply, "errno {errno}");
        }
        assert_eq!(
            for_connect_error(&ConnectError::Resolve(io::Error::other("nxdomain"))),
            Reply::HOST_UNREACHABLE
        );
        assert_eq!(
            for_connect_error(&ConnectError::TimedOut),
            Reply::TTL_EXPIRED
        );
    }
}
