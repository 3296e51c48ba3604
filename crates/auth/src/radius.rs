//! RADIUS packets, without I/O (issue #26's back end; not yet used by the server): an
//! Access-Request with PAP (RFC 2865 §5.2 password hiding) and an Accounting-Request
//! (RFC 2866 §3), and the checks an answer must pass before a word of it is believed — its
//! identifier, length, Response Authenticator (RFC 2865 §3) and a `Message-Authenticator`
//! (RFC 3579 §3.2), which socksgate sends first in every request and requires in every
//! response (the Blast-RADIUS attack, CVE-2024-3596, forges answers that lack one). The
//! Request Authenticator's randomness is the caller's.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// Packet codes (RFC 2865 §4, RFC 2866 §4).
pub mod code {
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Accounting-Request.
    pub const ACCOUNTING_REQUEST: u8 = 4;
    /// Accounting-Response.
    pub const ACCOUNTING_RESPONSE: u8 = 5;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types socksgate sends or reads (RFC 2865 §5, RFC 2866 §5, RFC 3579 §3.2).
pub mod attribute {
    /// User-Name.
    pub const USER_NAME: u8 = 1;
    /// User-Password (hidden).
    pub const USER_PASSWORD: u8 = 2;
    /// NAS-IP-Address.
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// Framed-IP-Address: the egress address socksgate gives the user.
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    /// Filter-Id: a group.
    pub const FILTER_ID: u8 = 11;
    /// Reply-Message.
    pub const REPLY_MESSAGE: u8 = 18;
    /// Class: a group, and echoed in accounting.
    pub const CLASS: u8 = 25;
    /// Session-Timeout: the session's time cap, in seconds.
    pub const SESSION_TIMEOUT: u8 = 27;
    /// NAS-Identifier.
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Acct-Status-Type: 1 Start, 2 Stop, 3 Interim-Update.
    pub const ACCT_STATUS_TYPE: u8 = 40;
    /// Acct-Input-Octets (from the client).
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    /// Acct-Output-Octets (to the client).
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    /// Acct-Session-Id.
    pub const ACCT_SESSION_ID: u8 = 44;
    /// Acct-Session-Time, in seconds.
    pub const ACCT_SESSION_TIME: u8 = 46;
    /// Acct-Input-Gigawords (the upper 32 bits of the octets).
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    /// Acct-Output-Gigawords.
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    /// Message-Authenticator: HMAC-MD5 of the packet.
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
}

/// The largest packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;
const HEADER: usize = 20;

/// One attribute: its type and value (at most 253 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The type.
    pub kind: u8,
    /// The value.
    pub value: Vec<u8>,
}

impl Attribute {
    /// An attribute of `kind` with `value`.
    pub fn new(kind: u8, value: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    /// A 32-bit integer attribute (network order).
    pub fn integer(kind: u8, value: u32) -> Self {
        Self::new(kind, value.to_be_bytes())
    }
}

/// Why a packet could not be made, or an answer is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusError(pub String);

impl std::fmt::Display for RadiusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RadiusError {}

fn error(why: &str) -> RadiusError {
    RadiusError(why.to_owned())
}

/// An answer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its code ([`code::ACCESS_ACCEPT`], …).
    pub code: u8,
    /// Its attributes, in order (the Message-Authenticator included).
    pub attributes: Vec<Attribute>,
}

impl Answer {
    /// The first value of attribute `kind`.
    pub fn first(&self, kind: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|attribute| attribute.kind == kind)
            .map(|attribute| attribute.value.as_slice())
    }

    /// Every value of attribute `kind`.
    pub fn all(&self, kind: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |attribute| attribute.kind == kind)
            .map(|attribute| attribute.value.as_slice())
    }
}

/// An Access-Request for `user` with PAP `password`, `id` and the random `authenticator`;
/// a Message-Authenticator first, then User-Name, User-Password and `extra`.
pub fn access_request(
    id: u8,
    authenticator: [u8; 16],
    secret: &[u8],
    user: &[u8],
    password: &[u8],
    extra: &[Attribute],
) -> Result<Vec<u8>, RadiusError> {
    if secret.is_empty() {
        return Err(error("the shared secret is empty"));
    }
    let mut attributes = vec![
        Attribute::new(attribute::MESSAGE_AUTHENTICATOR, [0u8; 16]),
        Attribute::new(attribute::USER_NAME, user),
        Attribute::new(
            attribute::USER_PASSWORD,
            hide_password(password, secret, &authenticator)?,
        ),
    ];
    attributes.extend_from_slice(extra);
    let mut packet = encode(code::ACCESS_REQUEST, id, authenticator, &attributes)?;
    sign(&mut packet, secret, &authenticator);
    Ok(packet)
}

/// An Accounting-Request with `attributes` (RFC 2866 §3: its authenticator is the MD5 of
/// the packet with a zero one, and the secret), a Message-Authenticator first.
pub fn accounting_request(
    id: u8,
    secret: &[u8],
    attributes: &[Attribute],
) -> Result<Vec<u8>, RadiusError> {
    let mut all = vec![Attribute::new(attribute::MESSAGE_AUTHENTICATOR, [0u8; 16])];
    all.extend_from_slice(attributes);
    let mut packet = encode(code::ACCOUNTING_REQUEST, id, [0; 16], &all)?;
    // The Message-Authenticator is computed over the zero authenticator (RFC 3579 §3.2),
    // then the authenticator over the whole packet.
    sign(&mut packet, secret, &[0; 16]);
    let digest = md5_of(&[&packet, secret]);
    packet[4..HEADER].copy_from_slice(&digest);
    Ok(packet)
}

/// Checks an answer to the request with `id` and `request_authenticator`: its length, its
/// identifier, its Response Authenticator and its Message-Authenticator (required when
/// `require_message_authenticator`; checked whenever present).
pub fn verify_answer(
    packet: &[u8],
    id: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Answer, RadiusError> {
    if packet.len() < HEADER {
        return Err(error("shorter than a RADIUS header"));
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if !(HEADER..=MAX_PACKET).contains(&length) || length > packet.len() {
        return Err(error("its length field does not match the datagram"));
    }
    // Octets past the length are padding (RFC 2865 §3): ignored.
    let packet = &packet[..length];
    if packet[1] != id {
        return Err(error("an answer to another request"));
    }
    let mut expected = packet.to_vec();
    expected[4..HEADER].copy_from_slice(request_authenticator);
    let digest = md5_of(&[&expected, secret]);
    if !crate::constant_time_eq(&digest, &packet[4..HEADER]) {
        return Err(error(
            "its Response Authenticator is wrong (another secret?)",
        ));
    }
    let attributes = decode_attributes(&packet[HEADER..])?;
    let mut offset = HEADER;
    let mut authenticated = false;
    for attribute in &attributes {
        if attribute.kind == attribute::MESSAGE_AUTHENTICATOR {
            if attribute.value.len() != 16 || authenticated {
                return Err(error("a malformed or second Message-Authenticator"));
            }
            // HMAC-MD5 of the packet with the Request Authenticator in place and the
            // attribute's value zeroed (RFC 3579 §3.2).
            let mut zeroed = expected.clone();
            zeroed[offset + 2..offset + 18].fill(0);
            let mut mac = hmac_md5(secret);
            mac.update(&zeroed);
            if mac.verify_slice(&attribute.value).is_err() {
                return Err(error("its Message-Authenticator is wrong"));
            }
            authenticated = true;
        }
        offset += 2 + attribute.value.len();
    }
    if require_message_authenticator && !authenticated {
        return Err(error(
            "no Message-Authenticator (required: the Blast-RADIUS attack, CVE-2024-3596)",
        ));
    }
    Ok(Answer {
        code: packet[0],
        attributes,
    })
}

/// An answer as a server makes it (for tests and fuzzing of the checks): `code`,
/// `attributes`, signed with `secret` for the request's authenticator, with a
/// Message-Authenticator first when `authenticate`.
pub fn answer_packet(
    code: u8,
    id: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    attributes: &[Attribute],
    authenticate: bool,
) -> Result<Vec<u8>, RadiusError> {
    let mut all = Vec::new();
    if authenticate {
        all.push(Attribute::new(attribute::MESSAGE_AUTHENTICATOR, [0u8; 16]));
    }
    all.extend_from_slice(attributes);
    let mut packet = encode(code, id, *request_authenticator, &all)?;
    if authenticate {
        sign(&mut packet, secret, request_authenticator);
    }
    let digest = md5_of(&[&packet, secret]);
    packet[4..HEADER].copy_from_slice(&digest);
    Ok(packet)
}

/// User-Password hiding (RFC 2865 §5.2): the password padded to 16-byte blocks (at most
/// 128 bytes), each XORed with MD5(secret + the previous block, the authenticator first).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, RadiusError> {
    if password.len() > 128 {
        return Err(error("a password longer than 128 bytes cannot be sent"));
    }
    let blocks = password.len().div_ceil(16).max(1);
    let mut hidden = password.to_vec();
    hidden.resize(blocks * 16, 0);
    let mut previous: Vec<u8> = authenticator.to_vec();
    for block in hidden.chunks_mut(16) {
        let mask = md5_of(&[secret, &previous]);
        for (byte, mask) in block.iter_mut().zip(mask) {
            *byte ^= mask;
        }
        previous = block.to_vec();
    }
    Ok(hidden)
}

fn encode(
    code: u8,
    id: u8,
    authenticator: [u8; 16],
    attributes: &[Attribute],
) -> Result<Vec<u8>, RadiusError> {
    let mut packet = vec![code, id, 0, 0];
    packet.extend_from_slice(&authenticator);
    for attribute in attributes {
        if attribute.value.len() > 253 {
            return Err(error("an attribute longer than 253 bytes"));
        }
        packet.push(attribute.kind);
        packet.push(attribute.value.len() as u8 + 2);
        packet.extend_from_slice(&attribute.value);
    }
    if packet.len() > MAX_PACKET {
        return Err(error("a packet longer than 4096 bytes"));
    }
    let length = (packet.len() as u16).to_be_bytes();
    packet[2..4].copy_from_slice(&length);
    Ok(packet)
}

fn decode_attributes(mut bytes: &[u8]) -> Result<Vec<Attribute>, RadiusError> {
    let mut attributes = Vec::new();
    while !bytes.is_empty() {
        let [kind, length, ..] = *bytes else {
            return Err(error("a truncated attribute"));
        };
        let length = usize::from(length);
        if length < 2 || length > bytes.len() {
            return Err(error("an attribute's length does not fit the packet"));
        }
        attributes.push(Attribute::new(kind, &bytes[2..length]));
        bytes = &bytes[length..];
    }
    Ok(attributes)
}

/// Fills the Message-Authenticator (the first attribute, its value zero) of `packet`,
/// computed with `authenticator` in the header.
fn sign(packet: &mut [u8], secret: &[u8], authenticator: &[u8; 16]) {
    let saved: [u8; 16] = packet[4..HEADER].try_into().unwrap_or([0; 16]);
    packet[4..HEADER].copy_from_slice(authenticator);
    let mut mac = hmac_md5(secret);
    mac.update(packet);
    let value = mac.finalize().into_bytes();
    packet[HEADER + 2..HEADER + 18].copy_from_slice(&value);
    packet[4..HEADER].copy_from_slice(&saved);
}

fn hmac_md5(secret: &[u8]) -> Hmac<Md5> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Md5> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any key length"))
}

fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut hash = Md5::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"xyzzy5461";
    const AUTHENTICATOR: [u8; 16] = [
        0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22,
        0x7a,
    ];

    /// RFC 2865 §7.1: nemo's password "arctangent" with secret "xyzzy5461".
    #[test]
    fn passwords_are_hidden_as_rfc_2865_shows() {
        let hidden = hide_password(b"arctangent", SECRET, &AUTHENTICATOR).unwrap();
        assert_eq!(
            hidden,
            [
                0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a,
                0x0a, 0xee
            ]
        );
        assert!(hide_password(&[b'x'; 129], SECRET, &AUTHENTICATOR).is_err());
        assert_eq!(
            hide_password(&[b'x'; 17], SECRET, &AUTHENTICATOR)
                .unwrap()
                .len(),
            32
        );
    }

    fn request() -> Vec<u8> {
        access_request(7, AUTHENTICATOR, SECRET, b"nemo", b"arctangent", &[]).unwrap()
    }

    #[test]
    fn a_request_carries_its_message_authenticator_first() {
        let packet = request();
        assert_eq!(packet[0], code::ACCESS_REQUEST);
        assert_eq!(
            usize::from(u16::from_be_bytes([packet[2], packet[3]])),
            packet.len()
        );
        assert_eq!(packet[HEADER], attribute::MESSAGE_AUTHENTICATOR);
        let mut zeroed = packet.clone();
        zeroed[HEADER + 2..HEADER + 18].fill(0);
        let mut mac = hmac_md5(SECRET);
        mac.update(&zeroed);
        assert!(mac.verify_slice(&packet[HEADER + 2..HEADER + 18]).is_ok());
    }

    #[test]
    fn an_answer_is_believed_only_when_every_check_passes() {
        let framed = Attribute::new(attribute::FRAMED_IP_ADDRESS, [10, 9, 8, 7]);
        let good = answer_packet(
            code::ACCESS_ACCEPT,
            7,
            &AUTHENTICATOR,
            SECRET,
            std::slice::from_ref(&framed),
            true,
        )
        .unwrap();
        let answer = verify_answer(&good, 7, &AUTHENTICATOR, SECRET, true).unwrap();
        assert_eq!(answer.code, code::ACCESS_ACCEPT);
        assert_eq!(
            answer.first(attribute::FRAMED_IP_ADDRESS),
            Some(&[10, 9, 8, 7][..])
        );
        // Another identifier, another secret, a flipped bit, a lie about the length.
        assert!(verify_answer(&good, 8, &AUTHENTICATOR, SECRET, true).is_err());
        assert!(verify_answer(&good, 7, &AUTHENTICATOR, b"other", true).is_err());
        for index in 0..good.len() {
            let mut flipped = good.clone();
            flipped[index] ^= 0x01;
            assert!(
                verify_answer(&flipped, 7, &AUTHENTICATOR, SECRET, true).is_err(),
                "{index}"
            );
        }
        // Blast-RADIUS: an answer without a Message-Authenticator is refused when required.
        let bare = answer_packet(
            code::ACCESS_ACCEPT,
            7,
            &AUTHENTICATOR,
            SECRET,
            &[framed],
            false,
        )
        .unwrap();
        assert!(verify_answer(&bare, 7, &AUTHENTICATOR, SECRET, true).is_err());
        assert!(verify_answer(&bare, 7, &AUTHENTICATOR, SECRET, false).is_ok());
        assert!(verify_answer(&good[..19], 7, &AUTHENTICATOR, SECRET, true).is_err());
    }

    #[test]
    fn accounting_requests_carry_rfc_2866_authenticators() {
        let attributes = [
            Attribute::integer(attribute::ACCT_STATUS_TYPE, 2),
            Attribute::new(attribute::ACCT_SESSION_ID, "s-1"),
            Attribute::integer(attribute::ACCT_INPUT_OCTETS, 1234),
        ];
        let packet = accounting_request(3, SECRET, &attributes).unwrap();
        let mut zeroed = packet.clone();
        zeroed[4..HEADER].fill(0);
        assert_eq!(md5_of(&[&zeroed, SECRET]), packet[4..HEADER]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_checked_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = verify_answer(&bytes, 7, &AUTHENTICATOR, SECRET, true);
            let _ = verify_answer(&bytes, 7, &AUTHENTICATOR, SECRET, false);
        }
    }
}
