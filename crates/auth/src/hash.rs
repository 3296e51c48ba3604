//! Password hashes as they appear in htpasswd files and /etc/shadow.

use std::fmt;

use zeroize::Zeroizing;

/// A stored password: a crypt(3)-style hash, or (only when allowed) plaintext.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// bcrypt: `$2y$`, `$2b$`, `$2a$` (Apache's `htpasswd -B`).
    Bcrypt(String),
    /// SHA-512-crypt: `$6$`.
    Sha512Crypt(String),
    /// SHA-256-crypt: `$5$`.
    Sha256Crypt(String),
    /// The password itself.
    Plaintext(Zeroizing<String>),
}

/// A stored password that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// A `$…$` scheme this crate does not verify (MD5-crypt, Apache's `$apr1$`, …).
    Unsupported(String),
    /// No `$` prefix: plaintext, which is refused unless allowed.
    Plaintext,
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(scheme) => write!(
                f,
                "hash scheme {scheme} is not supported (use bcrypt: htpasswd -B, or socksgate passwd)"
            ),
            Self::Plaintext => f.write_str(
                "plaintext password (hash it with htpasswd -B or socksgate passwd, or set \
                 danger_plaintext_passwords)",
            ),
        }
    }
}

impl std::error::Error for HashError {}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bcrypt(_) => "PasswordHash::Bcrypt",
            Self::Sha512Crypt(_) => "PasswordHash::Sha512Crypt",
            Self::Sha256Crypt(_) => "PasswordHash::Sha256Crypt",
            Self::Plaintext(_) => "PasswordHash::Plaintext",
        })
    }
}

impl PasswordHash {
    /// Recognises a stored password; plaintext only with `allow_plaintext`.
    pub fn parse(stored: &str, allow_plaintext: bool) -> Result<Self, HashError> {
        let scheme = stored.split('$').nth(1).unwrap_or("");
        match scheme {
            _ if !stored.starts_with('$') => {
                if allow_plaintext {
                    Ok(Self::Plaintext(Zeroizing::new(stored.to_owned())))
                } else {
                    Err(HashError::Plaintext)
                }
            }
            "2a" | "2b" | "2x" | "2y" => Ok(Self::Bcrypt(stored.to_owned())),
            "6" => Ok(Self::Sha512Crypt(stored.to_owned())),
            "5" => Ok(Self::Sha256Crypt(stored.to_owned())),
            other => Err(HashError::Unsupported(format!("${other}$"))),
        }
    }

    /// Whether `password` matches. Comparisons take the same time whatever the input.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Sha512Crypt(hash) => std::str::from_utf8(password)
                .is_ok_and(|password| sha_crypt::sha512_check(password, hash).is_ok()),
            Self::Sha256Crypt(hash) => std::str::from_utf8(password)
                .is_ok_and(|password| sha_crypt::sha256_check(password, hash).is_ok()),
            Self::Plaintext(stored) => constant_time_eq(stored.as_bytes(), password),
        }
    }
}

/// A bcrypt hash of `password` at `cost` (4–31), in the `$2b$` form htpasswd also reads.
pub fn hash_password(password: &[u8], cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|error| error.to_string())
}

/// Compares without stopping at the first difference: the time depends on the stored
/// password's length only.
pub fn constant_time_eq(stored: &[u8], given: &[u8]) -> bool {
    let mut difference = stored.len() ^ given.len();
    for (index, &byte) in stored.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn schemes_are_recognised() {
        assert!(matches!(
            PasswordHash::parse("$2y$05$abc", false),
            Ok(PasswordHash::Bcrypt(_))
        ));
        assert!(matches!(
            PasswordHash::parse("$6$salt$x", false),
            Ok(PasswordHash::Sha512Crypt(_))
        ));
        assert!(matches!(
            PasswordHash::parse("$5$salt$x", false),
            Ok(PasswordHash::Sha256Crypt(_))
        ));
        assert_eq!(
            PasswordHash::parse("$apr1$x$y", false),
            Err(HashError::Unsupported("$apr1$".to_owned()))
        );
        assert_eq!(
            PasswordHash::parse("hunter2", false),
            Err(HashError::Plaintext)
        );
        assert!(PasswordHash::parse("hunter2", true).is_ok_and(|h| h.verify(b"hunter2")));
    }

    #[test]
    fn hashes_verify() {
        let hash = hash_password(b"correct horse", 4).unwrap_or_default();
        let parsed = PasswordHash::parse(&hash, false).unwrap_or(PasswordHash::Bcrypt(hash));
        assert!(parsed.verify(b"correct horse"));
        assert!(!parsed.verify(b"wrong horse"));
        // From `mkpasswd -m sha-512 -S saltsalt password`.
        let sha512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
        let parsed = PasswordHash::parse(sha512, false);
        assert!(parsed.is_ok_and(|h| h.verify(b"password") && !h.verify(b"Password")));
        let sha256 = "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.";
        let parsed = PasswordHash::parse(sha256, false);
        assert!(parsed.is_ok_and(|h| h.verify(b"password") && !h.verify(b"passwor")));
        let debug = format!("{:?}", PasswordHash::parse("pw", true));
        assert!(!debug.contains("pw\""), "{debug}");
    }
}
