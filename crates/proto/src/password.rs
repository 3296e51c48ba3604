//! Username/password sub-negotiation for SOCKS5 (RFC 1929).

use std::fmt;

use zeroize::Zeroizing;

use crate::wire::{put_short_field, DecodeError, ProtocolError, Reader, Wire};

/// The version byte of the sub-negotiation (RFC 1929 §2).
pub const VERSION: u8 = 0x01;

/// A username and password. `Debug` never shows the password, and both are wiped from memory
/// when dropped.
///
/// The wire form (RFC 1929 §2):
///
/// ```text
/// +----+------+----------+------+----------+
/// |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
/// +----+------+----------+------+----------+
/// | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
/// +----+------+----------+------+----------+
/// ```
///
/// Empty fields decode (some clients send an empty password) and are left to the
/// authenticator to refuse.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Zeroizing<Vec<u8>>,
    password: Zeroizing<Vec<u8>>,
}

impl Credentials {
    /// Builds credentials; each part must be at most 255 bytes.
    pub fn new(
        username: impl AsRef<[u8]>,
        password: impl AsRef<[u8]>,
    ) -> Result<Self, ProtocolError> {
        let (username, password) = (username.as_ref(), password.as_ref());
        if username.len() > 255 {
            return Err(ProtocolError::FieldTooLong("username"));
        }
        if password.len() > 255 {
            return Err(ProtocolError::FieldTooLong("password"));
        }
        Ok(Self {
            username: Zeroizing::new(username.to_vec()),
            password: Zeroizing::new(password.to_vec()),
        })
    }

    /// The username as sent.
    pub fn username(&self) -> &[u8] {
        &self.username
    }

    /// The username as text (invalid UTF-8 replaced), for logs and policy.
    pub fn username_lossy(&self) -> String {
        String::from_utf8_lossy(&self.username).into_owned()
    }

    /// The password as sent. Handle with care: never log it.
    pub fn password(&self) -> &[u8] {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username_lossy())
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Wire for Credentials {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        reader.version(VERSION)?;
        let username_len = reader.u8()?;
        let username = Zeroizing::new(reader.take(usize::from(username_len))?.to_vec());
        let password_len = reader.u8()?;
        let password = Zeroizing::new(reader.take(usize::from(password_len))?.to_vec());
        Ok((Self { username, password }, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_short_field(out, &self.username);
        put_short_field(out, &self.password);
    }
}

/// The server's verdict (RFC 1929 §2). Any status other than 0x00 is a failure, after which
/// the server closes the connection.
///
/// ```text
/// +----+--------+
/// |VER | STATUS |
/// +----+--------+
/// | 1  |   1    |
/// +----+--------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8);

impl Status {
    /// The credentials were accepted.
    pub const SUCCESS: Self = Self(0x00);
    /// The credentials were refused (any non-zero value means this; servers send 0x01).
    pub const FAILURE: Self = Self(0x01);

    /// Whether the credentials were accepted.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

impl Wire for Status {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (status, used) = Reader::version_then_byte(input, VERSION)?;
        Ok((Self(status), used))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let credentials = Credentials::new("alice", "hunter2").unwrap();
        let shown = format!("{credentials:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn overlong_parts_are_refused() {
        assert!(Credentials::new("a".repeat(256), "p").is_err());
        assert!(Credentials::new("u", "p".repeat(256)).is_err());
        assert!(Credentials::new("u".repeat(255), "p".repeat(255)).is_ok());
    }
}
