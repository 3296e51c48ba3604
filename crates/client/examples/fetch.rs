//! Fetches a page through a chain of SOCKS proxies given on the command line.
//!
//! ```sh
//! cargo run -p socksgate-client --example fetch -- example.com:80 socks5h://127.0.0.1:1080
//! ```

#![allow(clippy::print_stdout)] // an example program prints its result

use socksgate_client::{Chain, Hop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let target = args.next().ok_or("usage: fetch HOST:PORT PROXY_URL…")?;
    let chain: Chain = args
        .map(|url| url.parse::<Hop>())
        .collect::<Result<_, _>>()?;
    let mut stream = chain.connect(&target.parse()?).await?;
    let host = target
        .rsplit_once(':')
        .map_or(target.as_str(), |(host, _)| host);
    let request = format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut page = String::new();
    stream.read_to_string(&mut page).await?;
    print!("{page}");
    Ok(())
}
