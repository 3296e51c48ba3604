//! PAM (Linux-PAM's `libpam.so.0`), loaded on first use: one call that checks a user's
//! password against a service's rules (`/etc/pam.d/SERVICE`), account checks included.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr;

use crate::library::Loader;
use crate::LoadError;

/// `struct pam_message`.
#[repr(C)]
struct Message {
    style: c_int,
    text: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
struct Response {
    text: *mut c_char,
    retcode: c_int,
}

type Converse =
    unsafe extern "C" fn(c_int, *mut *const Message, *mut *mut Response, *mut c_void) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct Conversation {
    converse: Converse,
    data: *mut c_void,
}

functions! {
    /// The functions of `security/pam_appl.h` socksgate calls.
    Pam {
        pam_start: fn(*const c_char, *const c_char, *const Conversation, *mut *mut c_void) -> c_int;
        pam_authenticate: fn(*mut c_void, c_int) -> c_int;
        pam_acct_mgmt: fn(*mut c_void, c_int) -> c_int;
        pam_end: fn(*mut c_void, c_int) -> c_int;
        pam_strerror: fn(*mut c_void, c_int) -> *const c_char;
        pam_get_item: fn(*const c_void, c_int, *mut *const c_void) -> c_int;
        pam_set_item: fn(*mut c_void, c_int, *const c_void) -> c_int;
    }
}

static LIBRARY: Loader<Pam> = Loader::new("PAM", "libpam.so.0", "libpam0g");

/// Loads `file` instead of `libpam.so.0`. Only before the first use; returns false when it
/// is too late.
pub fn use_library(file: &std::ffi::OsStr) -> bool {
    LIBRARY.use_file(file)
}

/// Loads the library now (for a configuration check), or says why it cannot be.
pub fn load() -> Result<(), LoadError> {
    LIBRARY.get(Pam::bind).map(drop)
}

const SUCCESS: c_int = 0;
const PERM_DENIED: c_int = 6;
const AUTH_ERR: c_int = 7;
const CRED_INSUFFICIENT: c_int = 8;
const USER_UNKNOWN: c_int = 10;
const MAXTRIES: c_int = 11;
const NEW_AUTHTOK_REQD: c_int = 12;
const ACCT_EXPIRED: c_int = 13;
const AUTHTOK_EXPIRED: c_int = 27;
const CONV_ERR: c_int = 19;
const BUF_ERR: c_int = 5;
/// `PAM_USER`, for `pam_get_item`.
const USER: c_int = 2;
/// `PAM_FAIL_DELAY` (Linux-PAM): the function PAM calls instead of sleeping after a failure.
const FAIL_DELAY: c_int = 10;
const SILENT: c_int = 0x8000;
const DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
const PROMPT_ECHO_OFF: c_int = 1;
const PROMPT_ECHO_ON: c_int = 2;
const ERROR_MSG: c_int = 3;
const TEXT_INFO: c_int = 4;
/// Linux-PAM's `PAM_MAX_NUM_MSG`.
const MAX_MESSAGES: c_int = 32;

/// Why PAM did not accept a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PamError {
    /// The library could not be loaded.
    Load(LoadError),
    /// The user or password is not accepted, or the account may not log in now (expired,
    /// locked, outside its hours): PAM's words.
    Refused(String),
    /// PAM itself failed (a module error, an unreachable back end): the user may be fine.
    Failed(String),
}

impl fmt::Display for PamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(error) => error.fmt(f),
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Failed(why) => write!(f, "PAM failed: {why}"),
        }
    }
}

impl std::error::Error for PamError {}

/// What the conversation answers with.
struct Answers<'a> {
    user: &'a CStr,
    password: &'a CStr,
}

/// Checks `password` for `user` with the rules of `service`: `pam_authenticate`, then
/// `pam_acct_mgmt` (an expired or locked account is refused like a wrong password), with
/// `PAM_DISALLOW_NULL_AUTHTOK`. Returns the user's name as PAM has it after the modules ran
/// (a module may map the name it was given to its canonical form). Blocking.
pub fn check_password(service: &str, user: &str, password: &CStr) -> Result<String, PamError> {
    let pam = LIBRARY.get(Pam::bind).map_err(PamError::Load)?;
    let unusable = |what| PamError::Refused(format!("{what} contains a NUL byte"));
    let service = CString::new(service).map_err(|_| unusable("the service name"))?;
    let user = CString::new(user).map_err(|_| unusable("the user name"))?;
    let answers = Answers {
        user: &user,
        password,
    };
    let conversation = Conversation {
        converse,
        data: ptr::from_ref(&answers).cast_mut().cast(),
    };
    let mut handle: *mut c_void = ptr::null_mut();
    // SAFETY: the strings and the conversation outlive the handle (ended below, before they
    // are dropped); `handle` receives the new transaction.
    let started =
        unsafe { (pam.pam_start)(service.as_ptr(), user.as_ptr(), &conversation, &mut handle) };
    if started != SUCCESS || handle.is_null() {
        return Err(PamError::Failed(format!("pam_start: error {started}")));
    }
    // No sleep after a failure (pam_unix's 2 s, pam_faildelay's): socksgate delays failed
    // logins itself (its throttle), and a sleeping PAM call holds a verification slot that
    // real logins wait for. A module without delay support ignores the item.
    // SAFETY: a live handle; the function has the signature PAM_FAIL_DELAY wants and lives
    // as long as the program.
    unsafe { (pam.pam_set_item)(handle, FAIL_DELAY, no_delay as *const c_void) };
    let flags = SILENT | DISALLOW_NULL_AUTHTOK;
    // SAFETY: a live handle from pam_start.
    let mut status = unsafe { (pam.pam_authenticate)(handle, flags) };
    if status == SUCCESS {
        // SAFETY: as above.
        status = unsafe { (pam.pam_acct_mgmt)(handle, flags) };
    }
    let outcome = match status {
        SUCCESS => authenticated_user(pam, handle)
            .ok_or_else(|| PamError::Failed("PAM names no user after success".to_owned())),
        // What says something of the user; everything else says something of PAM.
        PERM_DENIED | AUTH_ERR | CRED_INSUFFICIENT | USER_UNKNOWN | MAXTRIES | NEW_AUTHTOK_REQD
        | ACCT_EXPIRED | AUTHTOK_EXPIRED => Err(PamError::Refused(describe(pam, handle, status))),
        _ => Err(PamError::Failed(describe(pam, handle, status))),
    };
    // SAFETY: the handle is ended once, and not used afterwards.
    unsafe { (pam.pam_end)(handle, status) };
    outcome
}

/// PAM's failure delay, as socksgate has it: none.
extern "C" fn no_delay(_status: c_int, _microseconds: std::ffi::c_uint, _data: *mut c_void) {}

/// `PAM_USER` of a live transaction.
fn authenticated_user(pam: &Pam, handle: *mut c_void) -> Option<String> {
    let mut item: *const c_void = ptr::null();
    // SAFETY: a live handle; the item stays PAM's (valid until pam_end), copied below.
    let found = unsafe { (pam.pam_get_item)(handle, USER, &mut item) };
    if found != SUCCESS || item.is_null() {
        return None;
    }
    // SAFETY: PAM_USER is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(item.cast::<c_char>()) };
    name.to_str()
        .ok()
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

fn describe(pam: &Pam, handle: *mut c_void, status: c_int) -> String {
    // SAFETY: a live handle; pam_strerror returns a static string (or null).
    let text = unsafe { (pam.pam_strerror)(handle, status) };
    if text.is_null() {
        return format!("error {status}");
    }
    // SAFETY: a NUL-terminated string of the library's.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The conversation: the password for hidden prompts, the user name for visible ones,
/// nothing for messages. Anything else ends the conversation with an error. Never unwinds.
unsafe extern "C" fn converse(
    count: c_int,
    messages: *mut *const Message,
    responses: *mut *mut Response,
    data: *mut c_void,
) -> c_int {
    if !(1..=MAX_MESSAGES).contains(&count) || messages.is_null() || responses.is_null() {
        return CONV_ERR;
    }
    let count = count as usize;
    // SAFETY: `data` is the Answers of check_password, alive for the whole transaction.
    let answers = unsafe { &*data.cast::<Answers<'_>>() };
    // SAFETY: calloc of `count` zeroed responses; PAM frees them (and their texts) with free.
    let replies = unsafe { libc::calloc(count, size_of::<Response>()) }.cast::<Response>();
    if replies.is_null() {
        return BUF_ERR;
    }
    for index in 0..count {
        // SAFETY: Linux-PAM passes an array of `count` pointers to messages.
        let message = unsafe { *messages.add(index) };
        if message.is_null() {
            // SAFETY: the replies made so far are ours until returned.
            unsafe { discard(replies, index) };
            return CONV_ERR;
        }
        // SAFETY: a message of PAM's, alive for this call.
        let answer = match unsafe { (*message).style } {
            PROMPT_ECHO_OFF => Some(answers.password),
            PROMPT_ECHO_ON => Some(answers.user),
            ERROR_MSG | TEXT_INFO => None,
            _ => {
                // SAFETY: as above.
                unsafe { discard(replies, index) };
                return CONV_ERR;
            }
        };
        if let Some(answer) = answer {
            // SAFETY: a copy in malloc'd memory, as PAM expects to free it.
            let text = unsafe { libc::strdup(answer.as_ptr()) };
            if text.is_null() {
                // SAFETY: as above.
                unsafe { discard(replies, index) };
                return BUF_ERR;
            }
            // SAFETY: `index` < `count`, inside the calloc'd array.
            unsafe { (*replies.add(index)).text = text };
        }
    }
    // SAFETY: PAM takes the replies.
    unsafe { *responses = replies };
    SUCCESS
}

/// Wipes and frees the first `filled` replies' texts and the array.
///
/// # Safety
/// `replies` is the calloc'd array of `converse`, not yet handed to PAM.
unsafe fn discard(replies: *mut Response, filled: usize) {
    for index in 0..filled {
        // SAFETY: inside the array; a text is null or ours from strdup.
        let text = unsafe { (*replies.add(index)).text };
        if !text.is_null() {
            // SAFETY: strdup'd, NUL-terminated.
            let length = unsafe { libc::strlen(text) };
            for offset in 0..length {
                // SAFETY: inside the string; volatile so that the wipe is not optimised away.
                unsafe { ptr::write_volatile(text.add(offset), 0) };
            }
            // SAFETY: malloc'd by strdup, freed once.
            unsafe { libc::free(text.cast()) };
        }
    }
    // SAFETY: calloc'd, freed once.
    unsafe { libc::free(replies.cast()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_user_is_refused_not_a_failure() {
        if let Err(error) = load() {
            assert!(
                std::env::var("SOCKSGATE_REQUIRE_INTEROP").as_deref() != Ok("1"),
                "{error}"
            );
            return;
        }
        // pam_unix (Debian's common-auth, which /etc/pam.d/other includes) knows no such user.
        let outcome = check_password(
            "socksgate-test-no-such-service",
            "socksgate-no-such-user",
            c"wrong",
        );
        assert!(matches!(outcome, Err(PamError::Refused(_))), "{outcome:?}");
    }

    #[test]
    fn a_missing_library_names_itself_and_its_package() {
        let loader: Loader<Pam> = Loader::new("PAM", "libpam.so.0", "libpam0g");
        assert!(loader.use_file("libpam-socksgate-missing.so.0".as_ref()));
        let Err(error) = loader.get(Pam::bind) else {
            panic!("a missing library loaded");
        };
        let text = error.to_string();
        assert!(text.contains("libpam-socksgate-missing.so.0"), "{text}");
        assert!(text.contains("apt-get install libpam0g"), "{text}");
        assert!(
            !loader.use_file("libpam.so.0".as_ref()),
            "too late to choose"
        );
    }
}
