//! Sends one DNS query for an A record over UDP through a chain of SOCKS5 proxies, and
//! prints the answer's size.
//!
//! ```sh
//! cargo run -p socksgate-client --example dns_over_udp -- 192.0.2.53:53 example.com socks5://127.0.0.1:1080
//! ```

#![allow(clippy::print_stdout)] // an example program prints its result

use socksgate_client::{Chain, Hop};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .ok_or("usage: dns_over_udp DNS_SERVER:PORT NAME PROXY_URL…")?;
    let name = args
        .next()
        .ok_or("usage: dns_over_udp DNS_SERVER:PORT NAME PROXY_URL…")?;
    let chain: Chain = args
        .map(|url| url.parse::<Hop>())
        .collect::<Result<_, _>>()?;
    let association = chain.udp_associate().await?;
    let mut query = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len())?);
        query.extend(label.as_bytes());
    }
    query.extend([0, 0, 1, 0, 1]);
    association.send_to(&query, &server.parse()?).await?;
    let mut answer = vec![0u8; 1500];
    let (len, from) = association.recv_from(&mut answer).await?;
    println!("{len} bytes from {from}");
    Ok(())
}
