//! `socksgate connect`: standard input and output to a target through the chain — OpenSSH's
//! `ProxyCommand`.

use std::io::Write;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exit;
use crate::proxies::ProxyArgs;

pub(crate) fn run(proxies: &ProxyArgs, host: &str, port: u16) -> ExitCode {
    let runtime = match crate::icmp::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::from(error)),
    };
    match runtime.block_on(relay(proxies, host, port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "socksgate connect: {error:#}");
    exit::status_of(error)
}

async fn relay(proxies: &ProxyArgs, host: &str, port: u16) -> anyhow::Result<()> {
    let chain = proxies.chain()?;
    let target = crate::proxies::target(host, port)?;
    let stream = chain.connect(&target).await?;
    let (mut from_target, mut to_target) = tokio::io::split(stream);
    let upstream = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            let read = stdin.read(&mut buffer).await?;
            if read == 0 {
                // Our input ended: pass the end on, keep reading the answer.
                to_target.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            to_target.write_all(&buffer[..read]).await?;
        }
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        tokio::io::copy(&mut from_target, &mut stdout).await?;
        stdout.flush().await
    };
    tokio::try_join!(upstream, downstream)?;
    Ok(())
}
