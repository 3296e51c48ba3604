//! The relay: integrity of large transfers both ways, half-close, many concurrent sessions,
//! the idle timeout and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socksgate_tests::{socks5_connect, EchoTarget, TestServer};

const MIB: usize = 1024 * 1024;

/// A reproducible stream of `blocks` MiB: pseudo-random bytes, each block stamped with its
/// index so reordering or loss changes the hash.
fn write_stream(out: &mut impl Write, seed: u64, blocks: usize) -> io::Result<()> {
    let mut block = vec![0u8; MIB];
    let mut state = seed | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    for index in 0..blocks {
        block[..8].copy_from_slice(&(index as u64).to_le_bytes());
        out.write_all(&block)?;
    }
    Ok(())
}

fn expected_hash(seed: u64, blocks: usize) -> Vec<u8> {
    struct HashWriter(Sha256);
    impl Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = HashWriter(Sha256::new());
    write_stream(&mut hasher, seed, blocks).unwrap();
    hasher.0.finalize().to_vec()
}

/// Hashes everything until end of file; returns the hash and the byte count.
fn hash_until_eof(stream: &mut TcpStream) -> (Vec<u8>, usize) {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buffer).unwrap() {
            0 => return (hasher.finalize().to_vec(), total),
            n => {
                hasher.update(&buffer[..n]);
                total += n;
            }
        }
    }
}

/// Sends `blocks` MiB with `seed` and hashes what comes back, at the same time.
fn send_and_receive(stream: TcpStream, seed: u64, blocks: usize) -> (Vec<u8>, usize) {
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        write_stream(&mut writer, seed, blocks).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let received = hash_until_eof(&mut reader);
    sending.join().unwrap();
    received
}

#[test]
fn two_hundred_fifty_six_mib_each_way_arrive_intact() {
    const BLOCKS: usize = 256;
    let (client_seed, target_seed) = (0x5eed_c11e, 0x7a26_0e07);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let target_side = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        send_and_receive(stream, target_seed, BLOCKS)
    });
    let server = TestServer::start();
    let stream = socks5_connect(server.addr(), &target.to_string()).unwrap();
    let at_client = send_and_receive(stream, client_seed, BLOCKS);
    let at_target = target_side.join().unwrap();

    assert_eq!(
        at_target,
        (expected_hash(client_seed, BLOCKS), BLOCKS * MIB),
        "upstream"
    );
    assert_eq!(
        at_client,
        (expected_hash(target_seed, BLOCKS), BLOCKS * MIB),
        "downstream"
    );
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["bytes_up"], (BLOCKS * MIB).to_string());
    assert_eq!(log[0]["bytes_down"], (BLOCKS * MIB).to_string());
    assert_eq!(log[0]["outcome"], "closed");
}

#[test]
fn client_that_stops_sending_still_receives_the_whole_response() {
    // The target answers only after the client's end of file: 1 MiB.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let target_side = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).unwrap();
        write_stream(&mut stream, 42, 1).unwrap();
        request
    });
    let server = TestServer::start();
    let mut stream = socks5_connect(server.addr(), &target.to_string()).unwrap();
    stream.write_all(b"GET /big\r\n\r\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let received = hash_until_eof(&mut stream);
    assert_eq!(received, (expected_hash(42, 1), MIB));
    assert_eq!(target_side.join().unwrap(), b"GET /big\r\n\r\n");
}

#[test]
fn two_thousand_concurrent_sessions_complete_correctly() {
    const SESSIONS: usize = 2000;
    raise_file_limit(SESSIONS * 10);
    let server = TestServer::start();
    let echo = EchoTarget::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let proxy = server.addr();
    let all_open = Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let results = runtime.block_on(async {
        let mut sessions = tokio::task::JoinSet::new();
        for id in 0..SESSIONS {
            let all_open = all_open.clone();
            let target = echo.addr;
            sessions.spawn(async move { one_session(proxy, target, id, &all_open).await });
        }
        let mut ok = 0;
        while let Some(result) = sessions.join_next().await {
            result.unwrap().unwrap();
            ok += 1;
        }
        ok
    });
    assert_eq!(results, SESSIONS);
}

/// Connects, waits until every session is connected, then echoes a payload unique to `id`.
async fn one_session(
    proxy: std::net::SocketAddr,
    target: std::net::SocketAddr,
    id: usize,
    all_open: &tokio::sync::Barrier,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(proxy).await?;
    let std::net::IpAddr::V4(ip) = target.ip() else {
        unreachable!("the echo target is on 127.0.0.1")
    };
    let mut handshake = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01];
    handshake.extend(ip.octets());
    handshake.extend(target.port().to_be_bytes());
    stream.write_all(&handshake).await?;
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).await?;
    assert_eq!(reply[..4], [0x05, 0x00, 0x05, 0x00]);
    all_open.wait().await;
    let payload = format!("session {id} ").repeat(64);
    stream.write_all(payload.as_bytes()).await?;
    stream.shutdown().await?;
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await?;
    assert_eq!(echoed, payload.as_bytes(), "session {id}");
    Ok(())
}

fn raise_file_limit(wanted: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let wanted = Some(wanted as u64);
    if limit.current < wanted {
        limit.current = limit.maximum.min(wanted).or(wanted);
        setrlimit(Resource::Nofile, limit).unwrap();
    }
}

#[test]
fn idle_sessions_are_closed_and_busy_ones_are_not() {
    let mut config = TestServer::loopback_config();
    config.timeouts.idle = Some(Duration::from_millis(500));
    let server = TestServer::start_with(config);
    let echo = EchoTarget::start();

    let mut busy = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
    let mut idle = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        busy.write_all(b"tick").unwrap();
        let mut answer = [0u8; 4];
        busy.read_exact(&mut answer).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut rest = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the idle session was closed");
    busy.write_all(b"tock").unwrap();
    let mut answer = [0u8; 4];
    busy.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"tock");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "idle-timeout");
}

#[test]
fn shutdown_stops_accepting_and_lets_running_sessions_finish() {
    let mut server = TestServer::start();
    let echo = EchoTarget::start();
    let address = server.addr();
    let mut running = socks5_connect(address, &echo.addr.to_string()).unwrap();
    server.begin_shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(address).is_ok() {
        assert!(Instant::now() < deadline, "the listener still accepts");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.write_all(b"still here").unwrap();
    let mut answer = [0u8; 10];
    running.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"still here");
    assert!(!server.is_finished(), "draining while a session runs");
    drop(running);
    while !server.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the drain ends when the last session does"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
