//! PAM: the system's own authentication (/etc/pam.d/SERVICE), with the user's system groups.

use std::ffi::CString;

use nix::unistd::{getgrouplist, Group, User};
use socksgate_proto::Method;
use zeroize::Zeroizing;

use crate::{user_name, Authenticator, Credentials, Identity, Refusal};

/// Authenticates against a PAM service.
#[derive(Debug, Clone)]
pub struct Pam {
    service: String,
}

impl Pam {
    /// PAM with the service name `service` (its rules are in /etc/pam.d/SERVICE; without
    /// that file PAM uses /etc/pam.d/other).
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
        }
    }
}

impl Authenticator for Pam {
    fn verify(&self, credentials: &Credentials) -> Result<Identity, Refusal> {
        let user = user_name(credentials)?;
        let password = Zeroizing::new(
            std::str::from_utf8(credentials.password())
                .map_err(|_| Refusal::Unusable("password is not UTF-8"))?
                .to_owned(),
        );
        let mut session = pam::Authenticator::with_password(&self.service)
            .map_err(|error| Refusal::BackEnd(format!("PAM: {error}")))?;
        session
            .get_handler()
            .set_credentials(user, password.as_str());
        session.authenticate().map_err(|_| Refusal::WrongPassword)?;
        Ok(Identity {
            user: user.to_owned(),
            groups: system_groups(user),
            method: Method::PASSWORD,
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
