//! The protection level of RFC 1961 §4: what the client asks for and what the server grants.

/// How the data after the handshake is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No encapsulation: authentication only (the level 0 curl and Dante's `clear` use).
    None,
    /// Every message integrity-protected (level 1).
    Integrity,
    /// Every message integrity-protected and encrypted (level 2).
    Confidentiality,
}

impl Level {
    /// The octet on the wire.
    pub fn octet(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Integrity => 1,
            Self::Confidentiality => 2,
        }
    }

    /// The level of an octet; selective protection (3) is answered as confidentiality.
    pub fn from_octet(octet: u8) -> Option<Self> {
        match octet {
            0 => Some(Self::None),
            1 => Some(Self::Integrity),
            2 | 3 => Some(Self::Confidentiality),
            _ => None,
        }
    }
}

/// The level the server grants: the strongest it allows that is not stronger than the
/// client asked for (a client asking for confidentiality can live with integrity, not the
/// other way round). `None` when no allowed level fits.
pub fn choose_level(requested: u8, allowed: &[Level]) -> Option<Level> {
    let requested = Level::from_octet(requested)?;
    allowed
        .iter()
        .copied()
        .filter(|&level| level <= requested)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1961 §4: the server answers with the level it will use.
    #[test]
    fn the_strongest_allowed_level_not_above_the_request() {
        let all = [Level::None, Level::Integrity, Level::Confidentiality];
        assert_eq!(choose_level(2, &all), Some(Level::Confidentiality));
        assert_eq!(choose_level(1, &all), Some(Level::Integrity));
        assert_eq!(choose_level(3, &all), Some(Level::Confidentiality));
        assert_eq!(choose_level(2, &[Level::None]), Some(Level::None));
        assert_eq!(choose_level(1, &[Level::Confidentiality]), None);
        assert_eq!(choose_level(7, &all), None);
    }
}
