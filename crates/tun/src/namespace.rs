//! The network namespace a TUN session's program runs in. One process, two namespaces: a
//! keeper thread moves into a new network namespace, makes the TUN device there (the
//! default route of that namespace) and starts the program from there, so the program and
//! its children see only the device; every other thread stays in the original namespace,
//! where the connections to the proxy are made.
//!
//! Without root, the process first enters a new user namespace (in which it holds the
//! capabilities a network namespace needs, as `unshare -r` does); that must happen while it
//! has a single thread.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// The device's name inside the namespace.
pub const DEVICE: &str = "sgtun0";
/// The device's own IPv4 address (RFC 2544's 198.18.0.0/15, as fake-IP proxies use).
pub const DEVICE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The session's DNS server, answered by the stack itself.
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The device's own IPv6 address (a unique local address).
pub const DEVICE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x736f, 0x636b, 0, 0, 0, 0, 1);
/// The MTU of the device, and the stack's.
pub const MTU: u16 = 9000;

/// Enters a new user namespace when not root, mapping this user to root in it, so that the
/// network namespace and the device can be made. Call before any thread is started.
pub fn enter_user_namespace_unless_root() -> io::Result<()> {
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return Ok(());
    }
    let gid = rustix::process::getgid();
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|error| {
        io::Error::new(
            io::Error::from(error).kind(),
            format!(
                "cannot make a user namespace ({error}): run as root, or allow unprivileged \
                 user namespaces (kernel.unprivileged_userns_clone)"
            ),
        )
    })?;
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", format!("0 {} 1", uid.as_raw()))?;
    fs::write("/proc/self/gid_map", format!("0 {} 1", gid.as_raw()))?;
    Ok(())
}

/// Moves the calling thread into a new network namespace with loopback up and the TUN
/// device as its default route, IPv4 and IPv6; returns the device.
pub fn isolate_thread() -> io::Result<tun::Device> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    ip(&["link", "set", "lo", "up"])?;
    let device = make_device()?;
    ip(&["route", "add", "default", "dev", DEVICE])?;
    ip(&["-6", "route", "add", "default", "dev", DEVICE])?;
    // Programs inside may open ping sockets (this namespace is ours alone): every group, or
    // in a user namespace the one group mapped. Without it ping needs CAP_NET_RAW: not fatal.
    let range = "/proc/sys/net/ipv4/ping_group_range";
    if fs::write(range, "0 2147483647").is_err() {
        let _ = fs::write(range, "0 0");
    }
    Ok(device)
}

/// The TUN device, up, with its IPv4 and IPv6 addresses, in the calling thread's namespace.
pub(crate) fn make_device() -> io::Result<tun::Device> {
    let mut config = tun::Configuration::default();
    config
        .tun_name(DEVICE)
        .address(DEVICE_V4)
        .netmask(Ipv4Addr::BROADCAST)
        .mtu(MTU)
        .up();
    let device = tun::create(&config).map_err(|error| {
        io::Error::other(format!(
            "making the TUN device {DEVICE}: {error} (/dev/net/tun must be open to this user: \
             udev makes it mode 0666; and only one session per namespace)"
        ))
    })?;
    let v6 = format!("{DEVICE_V6}/64");
    ip(&["-6", "addr", "add", &v6, "dev", DEVICE, "nodad"])?;
    Ok(device)
}

/// For the program's own process, before it is executed: a private mount namespace in which
/// `resolv_conf` is `/etc/resolv.conf` (so names go to the session's DNS server, whatever
/// the host uses), and death with the process that started it (so a killed session leaves
/// no program behind).
pub fn private_resolver(resolv_conf: &Path) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(io::Error::from)?;
    mount(
        Some(resolv_conf),
        "/etc/resolv.conf",
        none,
        MsFlags::MS_BIND,
        none,
    )
    .map_err(|error| {
        io::Error::new(
            io::Error::from(error).kind(),
            "bind-mounting /etc/resolv.conf",
        )
    })
}

/// The `resolv.conf` of a session: its own DNS server only.
pub fn resolv_conf() -> String {
    format!("# socksgate TUN session: names are answered by socksgate and resolved by the proxy\nnameserver {DNS_V4}\n")
}

/// Runs `ip ARGS…` (iproute2) and says which command failed.
pub(crate) fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| io::Error::new(error.kind(), format!("running ip (iproute2): {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
