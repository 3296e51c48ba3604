//! GSS-API (RFC 1961) against a real MIT KDC the test runs on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::sync::OnceLock;

use socksgate_gssapi::{Acceptor, ClientContext, Context};
use socksgate_tests::kdc::Kdc;

/// One realm for this test binary; its environment is the process's (the GSS-API library
/// reads it), set before any test uses Kerberos.
fn realm() -> Option<&'static Kdc> {
    static KDC: OnceLock<Option<Kdc>> = OnceLock::new();
    KDC.get_or_init(|| {
        let kdc = Kdc::start()?;
        for (name, value) in kdc.env() {
            std::env::set_var(name, value);
        }
        Some(kdc)
    })
    .as_ref()
}

#[test]
fn a_context_is_established_and_wraps_both_ways() {
    if realm().is_none() {
        return;
    }
    let acceptor = Acceptor::new(Some("rcmd")).unwrap();
    let mut server = acceptor.context();
    let mut client = ClientContext::new("rcmd", "localhost").unwrap();
    let mut token = client.step(None).unwrap();
    while let Some(to_server) = token.take() {
        let reply = server.step(&to_server).unwrap();
        if let Some(reply) = reply {
            token = client.step(Some(&reply)).unwrap();
        }
    }
    assert!(server.is_complete() && client.is_complete());
    assert_eq!(
        server.client_name().unwrap(),
        format!("alice@{}", socksgate_tests::kdc::REALM)
    );
    let sealed = client.wrap(true, b"secret payload").unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"secret"));
    assert_eq!(server.unwrap(&sealed).unwrap(), b"secret payload");
}
