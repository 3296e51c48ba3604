//! PAM: the system's own authentication (/etc/pam.d/SERVICE), with the user's system groups.
//! The library (`libpam.so.0`) is loaded at run time by `socksgate-sys`.

use std::ffi::{CStr, CString};

use nix::unistd::{getgrouplist, Group, User};
use socksgate_proto::Method;
use socksgate_sys::pam::{check_password, PamError};
use socksgate_sys::LoadError;
use zeroize::Zeroizing;

use crate::{user_name, Authenticator, Credentials, GroupsOf, Identity, Refusal};

/// Authenticates against a PAM service.
#[derive(Debug, Clone)]
pub struct Pam {
    service: String,
}

impl Pam {
    /// PAM with the service name `service` (its rules are in /etc/pam.d/SERVICE; without
    /// that file PAM uses /etc/pam.d/other). Loads the library now, so that a machine
    /// without it is told at start, with the package to install.
    pub fn new(service: &str) -> Result<Self, LoadError> {
        Self::library_available()?;
        Ok(Self {
            service: service.to_owned(),
        })
    }

    /// Loads the PAM library now, or says why it cannot be (with the package to install).
    pub fn library_available() -> Result<(), LoadError> {
        socksgate_sys::pam::load()
    }

    /// Loads `file` instead of the usual `libpam.so.0`; false once the library is in use.
    pub fn use_library(file: &std::ffi::OsStr) -> bool {
        socksgate_sys::pam::use_library(file)
    }
}

impl Authenticator for Pam {
    fn verify(&self, credentials: &Credentials) -> Result<Identity, Refusal> {
        let user = user_name(credentials)?;
        // Whatever the PAM stack makes of an empty password (pam_permit, an LDAP stack that
        // takes it for an anonymous bind), it is no password.
        if credentials.password().is_empty() {
            return Err(Refusal::Unusable("empty password"));
        }
        if credentials.password().contains(&0) {
            return Err(Refusal::Unusable("password contains a NUL byte"));
        }
        let mut password = Zeroizing::new(Vec::with_capacity(credentials.password().len() + 1));
        password.extend_from_slice(credentials.password());
        password.push(0);
        let password = CStr::from_bytes_with_nul(&password)
            .map_err(|_| Refusal::Unusable("password contains a NUL byte"))?;
        match check_password(&self.service, user, password) {
            // The name PAM settled on (sssd or LDAP may take `BOB` for `bob`): rules and
            // per-user limits see one name per account.
            Ok(user) => Ok(Identity {
                groups: system_groups(&user),
                user,
                method: Method::PASSWORD,
            }),
            Err(PamError::Refused(_)) => Err(Refusal::WrongPassword),
            Err(error) => Err(Refusal::BackEnd(format!("PAM: {error}"))),
        }
    }

    fn groups_of(&self, user: &str) -> Option<GroupsOf> {
        Some(GroupsOf {
            groups: system_groups(user),
            source: "the system's groups (PAM accounts)".to_owned(),
        })
    }
}

/// The names of the groups `user` belongs to on this system.
fn system_groups(user: &str) -> Vec<String> {
    let (Ok(Some(account)), Ok(name)) = (User::from_name(user), CString::new(user)) else {
        return Vec::new();
    };
    getgrouplist(&name, account.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten())
        .map(|group| group.name)
        .collect()
}
