//! `socksgate passwd`: add, change or remove a user in an htpasswd-format file.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::exit;

pub(crate) fn run(file: &Path, user: &str, stdin: bool, cost: u32, delete: bool) -> ExitCode {
    match update(file, user, stdin, cost, delete) {
        Ok(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            exit::code(exit::CONFIG)
        }
    }
}

fn update(file: &Path, user: &str, stdin: bool, cost: u32, delete: bool) -> anyhow::Result<String> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_whitespace) {
        bail!("a user name cannot be empty or contain ':' or spaces");
    }
    let directory = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !directory.is_dir() {
        bail!(
            "cannot write {}: the directory {} does not exist (create it first)",
            file.display(),
            directory.display()
        );
    }
    let existing = match fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error).with_context(|| format!("reading {}", file.display())),
    };
    let mut lines: Vec<String> = existing
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::to_owned)
        .collect();
    let position = lines
        .iter()
        .position(|line| line.split_once(':').is_some_and(|(name, _)| name == user));
    let message = if delete {
        let Some(index) = position else {
            bail!("no user {user} in {}", file.display());
        };
        lines.remove(index);
        format!("removed {user}")
    } else {
        let password = read_password(stdin)?;
        let hash =
            socksgate_auth::hash_password(password.as_bytes(), cost).map_err(anyhow::Error::msg)?;
        let line = format!("{user}:{hash}");
        match position {
            Some(index) => {
                lines[index] = line;
                format!("changed the password of {user}")
            }
            None => {
                lines.push(line);
                format!("added {user}")
            }
        }
    };
    write_atomically(file, &lines)?;
    Ok(message)
}

fn read_password(stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    let password = if stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        // rpassword asks on the controlling terminal; without one (a script, a pipe, a
        // container) say what to do instead of the bare errno.
        let no_terminal = |error: std::io::Error| {
            anyhow::anyhow!(
                "no terminal to ask for the password on ({error}): give it on standard input \
                 with --stdin"
            )
        };
        let first =
            Zeroizing::new(rpassword::prompt_password("New password: ").map_err(no_terminal)?);
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the password: ").map_err(no_terminal)?,
        );
        if first != again {
            bail!("the passwords differ");
        }
        first
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// Writes next to the file, then renames over it: readers (a running server) see the old
/// file or the new one, never half of one. Keeps the old file's permissions; a new file gets
/// 0600.
fn write_atomically(file: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(format!(".tmp.{}", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let permissions = fs::metadata(file)
        .map(|metadata| metadata.permissions())
        .unwrap_or_else(|_| Permissions::from_mode(0o600));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| {
            format!(
                "writing {} (beside it, {})",
                file.display(),
                temporary.display()
            )
        })?;
    let mut text = lines.join("\n");
    text.push('\n');
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    fs::set_permissions(&temporary, permissions)?;
    fs::rename(&temporary, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}
