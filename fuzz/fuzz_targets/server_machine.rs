//! Any client byte stream, under any listener options, split in two ways: the server machine
//! never panics and ends the same way.
#![no_main]

#[path = "../../crates/proto/tests/support/drive.rs"]
mod drive;

use libfuzzer_sys::fuzz_target;
use socksgate_proto::server::{ServerHandshake, ServerOptions};
use socksgate_proto::{Method, Methods};

fuzz_target!(|data: &[u8]| {
    let Some((&options, input)) = data.split_first() else {
        return;
    };
    let methods: Vec<Method> = [Method::NO_AUTH, Method::GSSAPI, Method::PASSWORD]
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| options & (1 << bit) != 0)
        .map(|(_, method)| method)
        .collect();
    let Some(methods) = Methods::new(&methods).filter(|m| !m.as_slice().is_empty()) else {
        return;
    };
    let options = ServerOptions {
        methods,
        allow_socks4: options & 0x80 != 0,
    };
    let whole = drive::drive(&mut ServerHandshake::new(options), [input]);
    let bytewise = drive::drive(&mut ServerHandshake::new(options), input.chunks(1));
    assert_eq!(whole, bytewise);
});
