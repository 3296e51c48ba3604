//! The three SOCKS commands, each run on a session whose request is known.

mod associate;
mod bind;
mod connect;

pub(crate) use associate::{associate, AssociationEnd};
pub(crate) use bind::bind;
pub(crate) use connect::connect;
