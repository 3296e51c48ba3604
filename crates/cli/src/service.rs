//! Running as a service: giving up root after the listeners are open (`[process]`), and
//! telling systemd where the server stands (`sd_notify`, `Type=notify`).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use anyhow::{bail, Context};
use nix::unistd::{setgid, setgroups, setuid, Group, User};
use socksgate_config::Process;

/// Becomes `process.user` (and its group, or `process.group`), dropping root and every
/// supplementary group. Nothing to do when no user is configured.
pub(crate) fn drop_privileges(process: &Process) -> anyhow::Result<()> {
    let Some((user, gid)) = account(process)
        .map_err(|problem| anyhow::anyhow!("{}: {}", problem.field, problem.message))?
    else {
        return Ok(());
    };
    let name = &user.name;
    if !nix::unistd::geteuid().is_root() {
        if nix::unistd::geteuid() == user.uid {
            return Ok(());
        }
        bail!("[process] user {name:?}: only root can become another user");
    }
    // Groups first: once the user is not root, it may not change them.
    setgroups(&[gid]).context("dropping supplementary groups")?;
    setgid(gid).context("changing group")?;
    setuid(user.uid).context("changing user")?;
    if setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        bail!("root could be regained after changing user");
    }
    tracing::info!(user = %name, gid = gid.as_raw(), "running without root");
    Ok(())
}

/// Why `[process]`'s account cannot be used: the field at fault, and whether the lookup
/// itself failed (rather than finding nothing).
pub(crate) struct AccountProblem {
    pub(crate) field: &'static str,
    pub(crate) message: String,
    pub(crate) lookup_failed: bool,
}

/// The account `[process]` names, and its group; `None` when none is configured. `check`
/// reads this as starting does.
pub(crate) fn account(
    process: &Process,
) -> Result<Option<(User, nix::unistd::Gid)>, AccountProblem> {
    let problem = |field, message: String, lookup_failed| AccountProblem {
        field,
        message,
        lookup_failed,
    };
    let Some(name) = &process.user else {
        if process.group.is_some() {
            return Err(problem(
                "process.group",
                "a group needs a user too".into(),
                false,
            ));
        }
        return Ok(None);
    };
    let user = match User::from_name(name) {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(problem(
                "process.user",
                format!("no such user: {name:?}"),
                false,
            ))
        }
        Err(error) => {
            let message = format!("looking up the user {name:?}: {error}");
            return Err(problem("process.user", message, true));
        }
    };
    let gid = match &process.group {
        Some(group) => match Group::from_name(group) {
            Ok(Some(group)) => group.gid,
            Ok(None) => {
                return Err(problem(
                    "process.group",
                    format!("no such group: {group:?}"),
                    false,
                ))
            }
            Err(error) => {
                let message = format!("looking up the group {group:?}: {error}");
                return Err(problem("process.group", message, true));
            }
        },
        None => user.gid,
    };
    Ok(Some((user, gid)))
}

/// Tells systemd (`$NOTIFY_SOCKET`, when the service is `Type=notify`) the server's state:
/// `READY=1`, `RELOADING=1`, `STOPPING=1`. Without the variable, nothing happens.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    // A name beginning with @ is in the abstract namespace.
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = address.and_then(|address| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &address)
    });
    if let Err(error) = sent {
        tracing::warn!(%error, state, "cannot notify systemd");
    }
}

/// The files the server re-reads after giving up root (the configuration on reload, the
/// password and group files when they change, a renewed certificate, the admin token, the
/// keytab at each Kerberos login) that `[process]`'s account could not read: each with the
/// field naming it. By the permission bits and the one group the server keeps (ACLs are
/// not read).
pub(crate) fn unreadable_after_the_drop(
    config: &socksgate_config::Config,
    file: &std::path::Path,
) -> Vec<(String, std::path::PathBuf)> {
    let Ok(Some((user, gid))) = account(&config.process) else {
        return Vec::new();
    };
    // The groups the server keeps: only the primary one (`drop_privileges` sets exactly it).
    let groups = vec![gid];
    let mut files = vec![("the configuration".to_owned(), file.to_path_buf())];
    files.extend(
        config
            .named_files()
            .into_iter()
            .filter(|(field, _)| field != "log.output"),
    );
    files
        .into_iter()
        .filter(|(_, path)| !readable_by(path, user.uid, &groups))
        .collect()
}

/// Whether `uid` (in `groups`) may read `path`: search on every directory above it, read on
/// the file itself.
fn readable_by(path: &std::path::Path, uid: nix::unistd::Uid, groups: &[nix::unistd::Gid]) -> bool {
    use std::os::unix::fs::MetadataExt;
    if uid.is_root() {
        return true;
    }
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let allows = |path: &std::path::Path, bit: u32| {
        let Ok(metadata) = std::fs::metadata(path) else {
            return false;
        };
        let mode = metadata.mode();
        let shift = if metadata.uid() == uid.as_raw() {
            6
        } else if groups.iter().any(|group| group.as_raw() == metadata.gid()) {
            3
        } else {
            0
        };
        (mode >> shift) & bit != 0
    };
    path.ancestors()
        .skip(1)
        .all(|directory| allows(directory, 0o1))
        && allows(&path, 0o4)
}
