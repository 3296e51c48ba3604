//! `socksgate tun`: the TUN device captures the traffic of the namespace socksgate runs in
//! (a whole host, or a container's namespace), by policy routing rather than by replacing
//! the default route:
//!
//! ```text
//! 5346: from all lookup main suppress_prefixlength 0   (specific routes, e.g. the LAN, win)
//! 5347: not from all fwmark 0x5347 lookup 5347        (everything else: the TUN device)
//! ```
//!
//! The chain's own sockets carry the mark, so they take the main table to the proxy (as
//! wg-quick does for WireGuard). IPv4 and IPv6 alike. The rules and the table's routes are
//! removed when [`Capture`] is dropped, or by a watchdog process ([`watch_over`]) when the
//! capturing process is killed; the device goes with the process that held it.

use std::io;

use crate::namespace::{ip, make_device, DEVICE};

/// The mark on the chain's sockets (`SO_MARK`), "SG".
pub const MARK: u32 = 0x5347;
/// The routing table of the device, and the rules' priorities.
const TABLE: &str = "5347";
const PRIORITY_MAIN: &str = "5346";
const PRIORITY_TUN: &str = "5347";
const FAMILIES: [&str; 2] = ["-4", "-6"];

/// The capture in force; undone when dropped.
#[derive(Debug)]
pub struct Capture {
    _private: (),
}

/// Makes the device and routes everything unmarked through it.
pub fn capture() -> io::Result<(tun::Device, Capture)> {
    remove_rules();
    let device = make_device()?;
    // Undone by the drop if a later step fails.
    let capture = Capture { _private: () };
    let mark = format!("{MARK:#x}");
    for family in FAMILIES {
        ip(&[
            family, "route", "add", "default", "dev", DEVICE, "table", TABLE,
        ])?;
        ip(&[
            family,
            "rule",
            "add",
            "table",
            "main",
            "suppress_prefixlength",
            "0",
            "priority",
            PRIORITY_MAIN,
        ])?;
        ip(&[
            family,
            "rule",
            "add",
            "not",
            "fwmark",
            &mark,
            "table",
            TABLE,
            "priority",
            PRIORITY_TUN,
        ])?;
    }
    Ok((device, capture))
}

impl Drop for Capture {
    fn drop(&mut self) {
        undo();
    }
}

/// The watchdog of a capture, run as a process of its own: waits until `capturer` is gone
/// (this process is then adopted by another), then removes the rules and routes it left.
/// Returns at once when the capture was undone already.
pub fn watch_over(capturer: u32) {
    while rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get() as u32) == Some(capturer)
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    undo();
}

/// Removes the rules and the table's routes.
fn undo() {
    remove_rules();
    for family in FAMILIES {
        let _ = ip(&[family, "route", "flush", "table", TABLE]);
    }
}

/// Removes this module's rules, wherever they came from.
fn remove_rules() {
    for family in FAMILIES {
        for priority in [PRIORITY_MAIN, PRIORITY_TUN] {
            // One `del` removes one rule; a second attempt finds none and fails.
            while ip(&[family, "rule", "del", "priority", priority]).is_ok() {}
        }
    }
}
