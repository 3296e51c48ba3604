//! The user's private directory for what socksgate writes for itself at run time (the
//! embedded preload library, `socksify --tun`'s resolver file): shared by `socksify` and
//! `tun`, so neither reaches into the other.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// $XDG_RUNTIME_DIR (or /tmp)/socksgate-UID/: the user's own (0700), so nobody else can swap
/// the files socksify hands to programs.
pub(crate) fn of_this_user() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::getuid().as_raw();
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let dir = base.join(format!("socksgate-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error).with_context(|| format!("creating {}", dir.display())),
    }
    let metadata = std::fs::symlink_metadata(&dir)?;
    if !metadata.is_dir() || metadata.uid() != uid || metadata.mode() & 0o077 != 0 {
        bail!("{} is not a private directory of this user", dir.display());
    }
    Ok(dir)
}
