//! What the library remembers: the real destination of each redirected socket, and the
//! fake addresses handed out for names.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libc::c_int;
use socksgate_proto::{Address, DomainName};

use crate::address::is_fake;
use crate::lock::Guarded;
use crate::marks::Marks;
use crate::own::Identity;
use crate::settings::settings;

/// Each redirected socket's destination, with the socket's identity: a number closed where
/// no hook saw and reused is not the socket that was redirected.
pub(crate) static DESTINATIONS: Guarded<Option<HashMap<c_int, (SocketAddr, Identity)>>> =
    Guarded::new(None);
/// Which sockets are redirected: `close`, `getpeername` and the rest skip the lock for the
/// others.
static REDIRECTED: Marks = Marks::new();

pub(crate) fn remember(fd: c_int, destination: SocketAddr) {
    let Some(socket) = crate::own::identity(fd) else {
        return;
    };
    DESTINATIONS.with(|map| {
        let added = map
            .get_or_insert_with(HashMap::new)
            .insert(fd, (destination, socket))
            .is_none();
        if added {
            REDIRECTED.mark(fd);
        }
    });
}

/// Whether `fd` may be redirected (`false` is certain; no lock taken).
pub(crate) fn may_follow(fd: c_int) -> bool {
    REDIRECTED.may_hold(fd)
}

/// The destination `fd` was redirected to — while `fd` is still that socket.
pub(crate) fn destination(fd: c_int) -> Option<SocketAddr> {
    if !REDIRECTED.may_hold(fd) {
        return None;
    }
    let socket = crate::own::identity(fd);
    DESTINATIONS.with(|map| {
        let map = map.as_mut()?;
        let (destination, redirected) = *map.get(&fd)?;
        if Some(redirected) == socket {
            return Some(destination);
        }
        // Left by a close no hook saw: forgotten now.
        map.remove(&fd);
        REDIRECTED.unmark(fd);
        None
    })
}

pub(crate) fn forget(fd: c_int) {
    if !REDIRECTED.may_hold(fd) {
        return;
    }
    DESTINATIONS.with(|map| {
        if map.as_mut().and_then(|m| m.remove(&fd)).is_some() {
            REDIRECTED.unmark(fd);
        }
    });
}

/// Forgets the destinations of `first..=last` (closed by `close_range` or `closefrom`).
pub(crate) fn forget_range(first: u32, last: u32) {
    if !REDIRECTED.any() {
        return;
    }
    DESTINATIONS.with(|map| {
        if let Some(map) = map.as_mut() {
            map.retain(|fd, _| {
                let gone = (first..=last).contains(&(*fd as u32));
                if gone {
                    REDIRECTED.unmark(*fd);
                }
                !gone
            });
        }
    });
}

pub(crate) fn duplicate(old: c_int, new: c_int) {
    if let Some(destination) = destination(old) {
        remember(new, destination);
    } else {
        forget(new);
    }
}

#[derive(Default)]
pub(crate) struct Names {
    next: u32,
    by_name: HashMap<String, Ipv4Addr>,
    by_address: HashMap<Ipv4Addr, String>,
}

pub(crate) static NAMES: Guarded<Option<Names>> = Guarded::new(None);

/// The fake address standing for `name` (the same one every time).
pub(crate) fn fake_address(name: &str) -> Ipv4Addr {
    let settings = settings();
    NAMES.with(|names| fake_address_in(names.get_or_insert_with(Names::default), name, settings))
}

fn fake_address_in(
    names: &mut Names,
    name: &str,
    settings: &crate::settings::Settings,
) -> Ipv4Addr {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(&address) = names.by_name.get(&name) {
        return address;
    }
    // Skip the block's first and last addresses; wrap around when it is used up.
    let offset = 1 + names.next % (settings.fake_size - 2);
    names.next = names.next.wrapping_add(1);
    let address = Ipv4Addr::from(settings.fake_base + offset);
    if let Some(old) = names.by_address.insert(address, name.clone()) {
        names.by_name.remove(&old);
    }
    names.by_name.insert(name, address);
    address
}

/// The name a fake address stands for.
pub(crate) fn name_of(address: Ipv4Addr) -> Option<String> {
    NAMES.with(|names| names.as_ref()?.by_address.get(&address).cloned())
}

/// The target to ask the proxies for: the name behind a fake address, or the address.
pub(crate) fn target_of(destination: SocketAddr) -> Address {
    if let IpAddr::V4(v4) = destination.ip() {
        let settings = settings();
        if is_fake(destination.ip(), settings.fake_base, settings.fake_size) {
            if let Some(name) = name_of(v4).and_then(|n| DomainName::new(&n).ok()) {
                return Address::domain(name, destination.port());
            }
        }
    }
    Address::from(destination)
}
