//! An idle session holds no pipe: the relay takes one for a burst and gives it back to the
//! pool when the burst ends (ARCHITECTURE.md, "One CONNECT, end to end").
//!
//! A test binary of its own: it counts this process's descriptors and the pipe pool is the
//! process's, so no other test may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::time::Duration;

use socksgate_tests::{socks5_connect, EchoTarget, TestServer};

#[test]
fn idle_sessions_hold_no_pipes() {
    // Every session here is four sockets in this process: client, accepted, outbound and the
    // echo target's. A relay direction takes a pipe (two more descriptors) when a read fills
    // its buffer, and gives it back to the pool when the burst ends: so after one burst
    // each, a hundred idle sessions hold no pipe, and the pool holds the few a burst used
    // (the bursts run one after another). A pipe kept by an idle direction would be 400
    // more pipe descriptors here.
    const SESSIONS: usize = 100;
    const BURST: usize = 64 * 1024;
    let server = TestServer::start();
    let echo = EchoTarget::start();
    let descriptors = || {
        let (mut all, mut pipes) = (0, 0);
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            all += 1;
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            pipes += usize::from(target.to_string_lossy().starts_with("pipe:"));
        }
        (all, pipes)
    };
    let (all_before, pipes_before) = descriptors();
    let burst: Vec<u8> = (0..BURST).map(|index| (index % 251) as u8).collect();
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let mut stream = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
        socksgate_tests::assert_echoes(&mut stream, &burst);
        sessions.push(stream);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (all, pipes) = descriptors();
    let pooled = pipes - pipes_before;
    assert!(
        pooled > 0,
        "no pipe reached the pool: the bursts never spliced"
    );
    assert!(
        pooled <= 16,
        "{pooled} pipe descriptors after the bursts: idle sessions keep their pipes"
    );
    let held = all - all_before - pooled;
    assert!(
        held <= SESSIONS * 4 + 16,
        "{held} descriptors for {SESSIONS} idle sessions"
    );
    drop(sessions);
}
