//! GSS-API (RFC 2743; the C bindings of RFC 2744) of the system's MIT Kerberos, loaded on
//! first use: names, acceptor credentials, security contexts of either side, and per-message
//! protection. Only the Kerberos V5 mechanism is used.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::ptr;

use crate::library::Loader;
use crate::LoadError;

type OmUint32 = u32;
/// `gss_name_t`, `gss_cred_id_t` and `gss_ctx_id_t`: pointers the library owns.
type Handle = *mut c_void;

/// `gss_buffer_desc`.
#[repr(C)]
struct BufferDesc {
    length: usize,
    value: *mut c_void,
}

/// `gss_OID_desc`.
#[repr(C)]
struct OidDesc {
    length: OmUint32,
    elements: *mut c_void,
}

/// `gss_OID_set_desc`.
#[repr(C)]
struct OidSetDesc {
    count: usize,
    elements: *mut OidDesc,
}

functions! {
    /// The functions of `gssapi/gssapi.h` socksgate calls.
    Gss {
        gss_import_name: fn(*mut OmUint32, *mut BufferDesc, *mut OidDesc, *mut Handle) -> OmUint32;
        gss_release_name: fn(*mut OmUint32, *mut Handle) -> OmUint32;
        gss_display_name: fn(*mut OmUint32, Handle, *mut BufferDesc, *mut *mut OidDesc) -> OmUint32;
        gss_acquire_cred: fn(
            *mut OmUint32, Handle, OmUint32, *mut OidSetDesc, c_int, *mut Handle,
            *mut *mut OidSetDesc, *mut OmUint32,
        ) -> OmUint32;
        gss_release_cred: fn(*mut OmUint32, *mut Handle) -> OmUint32;
        gss_init_sec_context: fn(
            *mut OmUint32, Handle, *mut Handle, Handle, *mut OidDesc, OmUint32, OmUint32,
            *mut c_void, *mut BufferDesc, *mut *mut OidDesc, *mut BufferDesc, *mut OmUint32,
            *mut OmUint32,
        ) -> OmUint32;
        gss_accept_sec_context: fn(
            *mut OmUint32, *mut Handle, Handle, *mut BufferDesc, *mut c_void, *mut Handle,
            *mut *mut OidDesc, *mut BufferDesc, *mut OmUint32, *mut OmUint32, *mut Handle,
        ) -> OmUint32;
        gss_delete_sec_context: fn(*mut OmUint32, *mut Handle, *mut BufferDesc) -> OmUint32;
        gss_wrap: fn(
            *mut OmUint32, Handle, c_int, OmUint32, *mut BufferDesc, *mut c_int, *mut BufferDesc,
        ) -> OmUint32;
        gss_unwrap: fn(
            *mut OmUint32, Handle, *mut BufferDesc, *mut BufferDesc, *mut c_int, *mut OmUint32,
        ) -> OmUint32;
        gss_release_buffer: fn(*mut OmUint32, *mut BufferDesc) -> OmUint32;
        gss_display_status: fn(
            *mut OmUint32, OmUint32, c_int, *mut OidDesc, *mut OmUint32, *mut BufferDesc,
        ) -> OmUint32;
    }
}

static LIBRARY: Loader<Gss> = Loader::new("GSS-API", "libgssapi_krb5.so.2", "libgssapi-krb5-2");

fn gss() -> Result<&'static Gss, GssapiError> {
    LIBRARY.get(Gss::bind).map_err(GssapiError::Load)
}

/// Loads `file` instead of `libgssapi_krb5.so.2` (another path to the same library). Only
/// before the first use; returns false when it is too late.
pub fn use_library(file: &std::ffi::OsStr) -> bool {
    LIBRARY.use_file(file)
}

/// Loads the library now (for a configuration check), or says why it cannot be.
pub fn load() -> Result<(), LoadError> {
    LIBRARY.get(Gss::bind).map(drop)
}

/// `GSS_C_MUTUAL_FLAG`: the acceptor proves itself too.
pub const MUTUAL: u32 = 2;
/// `GSS_C_CONF_FLAG`: messages may be encrypted.
pub const CONFIDENTIALITY: u32 = 16;
/// `GSS_C_INTEG_FLAG`: messages may be integrity-protected.
pub const INTEGRITY: u32 = 32;

/// `GSS_C_REPLAY_FLAG`: a replayed message is detected.
pub const REPLAY_DETECTION: u32 = 4;
/// `GSS_C_SEQUENCE_FLAG`: a message out of order (or missing) is detected.
pub const SEQUENCE_DETECTION: u32 = 8;

const COMPLETE: OmUint32 = 0;
const CONTINUE_NEEDED: OmUint32 = 1;
const GAP_TOKEN: OmUint32 = 16;
const GSS_CODE: c_int = 1;
const MECH_CODE: c_int = 2;
const ACCEPT: c_int = 2;
const INDEFINITE: OmUint32 = 0xffff_ffff;

/// A calling or routine error (RFC 2744 §3.9.1): the upper 16 bits of a major status.
fn failed(major: OmUint32) -> bool {
    major & 0xffff_0000 != 0
}

/// An OID of the library's constants, kept in static memory the library only reads.
struct StaticOid(OidDesc);

// SAFETY: the descriptor and the bytes it points to are never written, by us or the library.
unsafe impl Sync for StaticOid {}

impl StaticOid {
    const fn new(bytes: &'static [u8]) -> Self {
        Self(OidDesc {
            length: bytes.len() as OmUint32,
            elements: bytes.as_ptr() as *mut c_void,
        })
    }

    fn as_ptr(&self) -> *mut OidDesc {
        ptr::from_ref(&self.0).cast_mut()
    }
}

/// 1.2.840.113554.1.2.2, Kerberos V5 (RFC 1964).
static KERBEROS_V5: StaticOid = StaticOid::new(b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02");
/// 1.2.840.113554.1.2.1.4, `GSS_C_NT_HOSTBASED_SERVICE` (`service@host`).
static HOSTBASED_SERVICE: StaticOid = StaticOid::new(b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04");

/// A GSS-API failure: the library is missing, or a call failed (with the library's words
/// for its major and minor status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GssapiError {
    /// The library could not be loaded.
    Load(LoadError),
    /// A call failed.
    Call {
        /// The function (`gss_accept_sec_context`).
        function: &'static str,
        /// The library's description of the failure.
        message: String,
    },
}

impl fmt::Display for GssapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(error) => error.fmt(f),
            Self::Call { function, message } => write!(f, "{function}: {message}"),
        }
    }
}

impl std::error::Error for GssapiError {}

/// The library's text for a status code of one kind.
fn status_text(gss: &'static Gss, code: OmUint32, kind: c_int) -> String {
    let mut parts = Vec::new();
    let mut context: OmUint32 = 0;
    // Bounded: a library that never clears the context does not hang us.
    for _ in 0..8 {
        let mut text = LibraryBuffer::new(gss);
        let mut minor = 0;
        // SAFETY: every pointer is to a live local; the buffer is released by LibraryBuffer.
        let major = unsafe {
            (gss.gss_display_status)(
                &mut minor,
                code,
                kind,
                ptr::null_mut(),
                &mut context,
                &mut text.desc,
            )
        };
        if failed(major) {
            break;
        }
        parts.push(String::from_utf8_lossy(&text.to_vec()).into_owned());
        if context == 0 {
            break;
        }
    }
    parts.join("; ")
}

fn call_error(
    gss: &'static Gss,
    function: &'static str,
    major: OmUint32,
    minor: OmUint32,
) -> GssapiError {
    let mut message = status_text(gss, major, GSS_CODE);
    if minor != 0 {
        message = format!("{message} ({})", status_text(gss, minor, MECH_CODE));
    }
    GssapiError::Call { function, message }
}

/// A buffer the library filled, released when dropped.
struct LibraryBuffer {
    gss: &'static Gss,
    desc: BufferDesc,
}

impl LibraryBuffer {
    fn new(gss: &'static Gss) -> Self {
        Self {
            gss,
            desc: BufferDesc {
                length: 0,
                value: ptr::null_mut(),
            },
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        if self.desc.value.is_null() || self.desc.length == 0 {
            return Vec::new();
        }
        // SAFETY: the library set `value` to `length` readable bytes it owns until released.
        unsafe { std::slice::from_raw_parts(self.desc.value.cast::<u8>(), self.desc.length) }
            .to_vec()
    }
}

impl Drop for LibraryBuffer {
    fn drop(&mut self) {
        if !self.desc.value.is_null() {
            let mut minor = 0;
            // SAFETY: the buffer was filled by the library and is released once.
            unsafe { (self.gss.gss_release_buffer)(&mut minor, &mut self.desc) };
        }
    }
}

/// A buffer descriptor over bytes of ours the library may write to during the call. Every
/// input is handed over as a copy: MIT Kerberos before 1.22 rewrites the token given to
/// `gss_unwrap` in place (krb5 PR #1362), so no caller's slice is ever passed.
fn input(data: &mut [u8]) -> BufferDesc {
    BufferDesc {
        length: data.len(),
        value: data.as_mut_ptr().cast(),
    }
}

/// A GSS-API name (`gss_name_t`).
pub struct Name {
    gss: &'static Gss,
    handle: Handle,
}

// SAFETY: a name is not changed after it is made; MIT Kerberos' names may be read by several
// threads and released by any one.
unsafe impl Send for Name {}
// SAFETY: as above: only read while shared.
unsafe impl Sync for Name {}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Name").field(&self.display().ok()).finish()
    }
}

impl Name {
    /// A host-based service name, `service@host` (or `service` for any host).
    pub fn hostbased_service(text: &str) -> Result<Self, GssapiError> {
        let gss = gss()?;
        let mut text = text.as_bytes().to_vec();
        let mut buffer = input(&mut text);
        let mut handle: Handle = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: the input buffer is our copy, the OID is only read; `handle` receives the
        // new name.
        let major = unsafe {
            (gss.gss_import_name)(
                &mut minor,
                &mut buffer,
                HOSTBASED_SERVICE.as_ptr(),
                &mut handle,
            )
        };
        if failed(major) {
            return Err(call_error(gss, "gss_import_name", major, minor));
        }
        Ok(Self { gss, handle })
    }

    /// The name as text (a principal: `alice@EXAMPLE.ORG`).
    pub fn display(&self) -> Result<String, GssapiError> {
        let mut text = LibraryBuffer::new(self.gss);
        let mut minor = 0;
        // SAFETY: `handle` is a live name; the output buffer is released by LibraryBuffer.
        let major = unsafe {
            (self.gss.gss_display_name)(&mut minor, self.handle, &mut text.desc, ptr::null_mut())
        };
        if failed(major) {
            return Err(call_error(self.gss, "gss_display_name", major, minor));
        }
        Ok(String::from_utf8_lossy(&text.to_vec()).into_owned())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the name is ours and released once.
        unsafe { (self.gss.gss_release_name)(&mut minor, &mut self.handle) };
    }
}

/// Credentials (`gss_cred_id_t`) to accept contexts with.
pub struct Credential {
    gss: &'static Gss,
    handle: Handle,
}

// SAFETY: MIT Kerberos' credentials carry their own lock and may be used by several threads'
// contexts at once.
unsafe impl Send for Credential {}
// SAFETY: as above.
unsafe impl Sync for Credential {}

impl Credential {
    /// Acceptor credentials for `name` (any name in the keytab when `None`), Kerberos only.
    pub fn acceptor(name: Option<&Name>) -> Result<Self, GssapiError> {
        let gss = gss()?;
        let mut mechanisms = OidSetDesc {
            count: 1,
            elements: KERBEROS_V5.as_ptr(),
        };
        let mut handle: Handle = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: the name (or none) and the mechanism set are only read; `handle` receives
        // the credentials; the actual mechanisms and time are not asked for.
        let major = unsafe {
            (gss.gss_acquire_cred)(
                &mut minor,
                name.map_or(ptr::null_mut(), |name| name.handle),
                INDEFINITE,
                &mut mechanisms,
                ACCEPT,
                &mut handle,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if failed(major) {
            return Err(call_error(gss, "gss_acquire_cred", major, minor));
        }
        Ok(Self { gss, handle })
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the credentials are ours and released once.
        unsafe { (self.gss.gss_release_cred)(&mut minor, &mut self.handle) };
    }
}

/// A security context (`gss_ctx_id_t`) of either side, in establishment or established.
pub struct SecurityContext {
    gss: &'static Gss,
    handle: Handle,
    established: bool,
    peer: Option<Name>,
}

// SAFETY: a context may move between threads; it is used through `&mut self` only, so never
// by two threads at once (`&self` methods read our own fields, not the library's).
unsafe impl Send for SecurityContext {}
// SAFETY: as above.
unsafe impl Sync for SecurityContext {}

impl fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityContext")
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

impl SecurityContext {
    /// A context not yet started.
    pub fn new() -> Result<Self, GssapiError> {
        Ok(Self {
            gss: gss()?,
            handle: ptr::null_mut(),
            established: false,
            peer: None,
        })
    }

    /// Whether the context is established.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The initiator's name, once an accepted context is established.
    pub fn peer(&self) -> Option<&Name> {
        self.peer.as_ref()
    }

    /// The acceptor's step: takes the initiator's token, returns the token to send back.
    pub fn accept(
        &mut self,
        credential: &Credential,
        token: &[u8],
    ) -> Result<Option<Vec<u8>>, GssapiError> {
        let gss = self.gss;
        let mut token = token.to_vec();
        let mut token = input(&mut token);
        let mut output = LibraryBuffer::new(gss);
        let mut source: Handle = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: `handle` is this context (or none yet); the credential is live; the input
        // is our copy; the output buffer and the source name become ours.
        let major = unsafe {
            (gss.gss_accept_sec_context)(
                &mut minor,
                &mut self.handle,
                credential.handle,
                &mut token,
                ptr::null_mut(),
                &mut source,
                ptr::null_mut(),
                &mut output.desc,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if !source.is_null() {
            self.peer = Some(Name {
                gss,
                handle: source,
            });
        }
        let token = self.step_outcome("gss_accept_sec_context", major, minor, &output)?;
        if self.established && self.peer.is_none() {
            self.established = false;
            return Err(GssapiError::Call {
                function: "gss_accept_sec_context",
                message: "an established context without the initiator's name".to_owned(),
            });
        }
        Ok(token)
    }

    /// The initiator's step with `target`: takes the acceptor's token (none at first),
    /// returns the token to send. `flags` are the services asked for ([`MUTUAL`], …).
    pub fn initiate(
        &mut self,
        target: &Name,
        flags: u32,
        token: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, GssapiError> {
        let gss = self.gss;
        let mut copy = token.map(<[u8]>::to_vec);
        let mut token = copy.as_deref_mut().map(input);
        let mut output = LibraryBuffer::new(gss);
        let mut minor = 0;
        // SAFETY: default credentials (none given); `handle` is this context (or none yet);
        // the target and mechanism are only read, the input is our copy; the output buffer
        // becomes ours.
        let major = unsafe {
            (gss.gss_init_sec_context)(
                &mut minor,
                ptr::null_mut(),
                &mut self.handle,
                target.handle,
                KERBEROS_V5.as_ptr(),
                flags,
                0,
                ptr::null_mut(),
                token.as_mut().map_or(ptr::null_mut(), ptr::from_mut),
                ptr::null_mut(),
                &mut output.desc,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.step_outcome("gss_init_sec_context", major, minor, &output)
    }

    fn step_outcome(
        &mut self,
        function: &'static str,
        major: OmUint32,
        minor: OmUint32,
        output: &LibraryBuffer,
    ) -> Result<Option<Vec<u8>>, GssapiError> {
        // Only "complete" and "continue needed" go on: any other status, a supplementary one
        // alone included (a replayed or old token, RFC 2744 §5.1), is a failure.
        if major != COMPLETE && major != CONTINUE_NEEDED {
            self.established = false;
            return Err(call_error(self.gss, function, major, minor));
        }
        if self.handle.is_null() {
            self.established = false;
            return Err(GssapiError::Call {
                function,
                message: "the library returned no context".to_owned(),
            });
        }
        self.established = major == COMPLETE;
        let token = output.to_vec();
        Ok((!token.is_empty()).then_some(token))
    }

    /// Protects `data` (RFC 2743 §2.3.3): integrity always, encrypted when `encrypt`.
    pub fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssapiError> {
        let gss = self.gss;
        let mut data = data.to_vec();
        let mut message = input(&mut data);
        let mut output = LibraryBuffer::new(gss);
        let mut encrypted: c_int = 0;
        let mut minor = 0;
        // SAFETY: an established context (or the library refuses); the input is our copy;
        // the output buffer becomes ours.
        let major = unsafe {
            (gss.gss_wrap)(
                &mut minor,
                self.handle,
                c_int::from(encrypt),
                0,
                &mut message,
                &mut encrypted,
                &mut output.desc,
            )
        };
        if major != COMPLETE {
            return Err(call_error(gss, "gss_wrap", major, minor));
        }
        if encrypt && encrypted == 0 {
            return Err(GssapiError::Call {
                function: "gss_wrap",
                message: "the context cannot encrypt".to_owned(),
            });
        }
        Ok(output.to_vec())
    }

    /// Checks (and decrypts) a token of the peer's `wrap` (RFC 2743 §2.3.4), with the
    /// detection the initiator asked for: a replayed, outdated or out-of-order token is
    /// refused. A token after missing ones is refused for `Delivery::InOrder` (on a stream
    /// that means messages were removed) and accepted for `Delivery::Datagram` (UDP loses
    /// datagrams). A datagram overtaken by a later one is refused like a replay: MIT reports
    /// a replay older than its 64-token window as merely out of order, so telling them apart
    /// is not possible, and a late datagram is only a lost one.
    pub fn unwrap(&mut self, token: &[u8], delivery: Delivery) -> Result<Opened, GssapiError> {
        let gss = self.gss;
        let mut token = token.to_vec();
        let mut message = input(&mut token);
        let mut output = LibraryBuffer::new(gss);
        let mut encrypted: c_int = 0;
        let mut minor = 0;
        // SAFETY: as for wrap (the library may rewrite our copy of the token in place); the
        // QOP is not asked for.
        let major = unsafe {
            (gss.gss_unwrap)(
                &mut minor,
                self.handle,
                &mut message,
                &mut output.desc,
                &mut encrypted,
                ptr::null_mut(),
            )
        };
        let tolerated = match delivery {
            Delivery::InOrder => 0,
            Delivery::Datagram => GAP_TOKEN,
        };
        if major & !tolerated != COMPLETE {
            return Err(call_error(gss, "gss_unwrap", major, minor));
        }
        Ok(Opened {
            data: output.to_vec(),
            encrypted: encrypted != 0,
        })
    }
}

/// How a peer's wrapped tokens arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In order and complete, or the peer's stream was tampered with.
    InOrder,
    /// As UDP delivers: some lost (and a late one is taken for lost).
    Datagram,
}

/// A token's content, and whether it had been encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The plaintext.
    pub data: Vec<u8>,
    /// Whether the token was encrypted (confidentiality), not only integrity-protected.
    pub encrypted: bool,
}

impl Drop for SecurityContext {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            let mut minor = 0;
            // SAFETY: the context is ours and deleted once; no output token is asked for.
            unsafe {
                (self.gss.gss_delete_sec_context)(&mut minor, &mut self.handle, ptr::null_mut())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // These run wherever the library is installed (it is on Debian's base system through
    // libgssapi-krb5-2); they need no KDC.
    /// Whether the library is here; with SOCKSGATE_REQUIRE_INTEROP (CI) it must be.
    fn library_here() -> bool {
        match load() {
            Ok(()) => true,
            Err(error) => {
                assert!(
                    std::env::var("SOCKSGATE_REQUIRE_INTEROP").as_deref() != Ok("1"),
                    "{error}"
                );
                false
            }
        }
    }

    #[test]
    fn a_hostbased_name_reads_back_as_it_was_written() {
        if !library_here() {
            return;
        }
        let name = Name::hostbased_service("rcmd@gateway.example").unwrap();
        assert_eq!(name.display().unwrap(), "rcmd@gateway.example");
    }

    #[test]
    fn failures_carry_the_librarys_words() {
        if !library_here() {
            return;
        }
        let gss = gss().unwrap();
        // GSS_S_BAD_NAME (2 << 16).
        let text = status_text(gss, 2 << 16, GSS_CODE);
        assert!(text.to_lowercase().contains("name"), "{text}");
        // A context that was never established cannot wrap.
        let mut context = SecurityContext::new().unwrap();
        let error = context.wrap(true, b"data").unwrap_err();
        assert!(
            matches!(
                error,
                GssapiError::Call {
                    function: "gss_wrap",
                    ..
                }
            ),
            "{error}"
        );
    }
}
