//! Any server byte stream, for each protocol and command, split in two ways: the client
//! machine never panics and ends the same way.
#![no_main]

#[path = "../../crates/proto/tests/support/drive.rs"]
mod drive;

use libfuzzer_sys::fuzz_target;
use socksgate_proto::client::{ClientHandshake, ClientProtocol};
use socksgate_proto::password::Credentials;
use socksgate_proto::{Address, Command};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, input)) = data.split_first() else {
        return;
    };
    let protocol = match setup % 4 {
        0 => ClientProtocol::Socks4 { user_id: b"u".to_vec() },
        1 => ClientProtocol::Socks4a { user_id: vec![] },
        2 => ClientProtocol::socks5(),
        _ => ClientProtocol::Socks5 {
            credentials: Credentials::new("user", "pass").ok(),
            gssapi: setup & 0x10 != 0,
        },
    };
    let target: Address = match setup & 0x20 {
        0 => "127.0.0.1:80".parse(),
        _ => "example.com:443".parse(),
    }
    .expect("a valid address");
    let command = Command(1 + (setup >> 6) % 3);
    let Ok(machine) = ClientHandshake::new(protocol, command, target) else {
        return;
    };
    let whole = drive::drive(&mut machine.clone(), [input]);
    let bytewise = drive::drive(&mut machine.clone(), input.chunks(1));
    assert_eq!(whole, bytewise);
});
