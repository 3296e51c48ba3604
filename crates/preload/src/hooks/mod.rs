//! The functions the shim replaces, by family: each file is one unsafe boundary to audit.

pub mod datagrams;
pub mod descriptors;
pub mod names;
pub mod tcp;
