//! RFC 1929 logins, as the throttle allows them: checked off the async threads, failures
//! held back, guessers capped (`socksgate_auth::Throttle`), and the fleet told.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use socksgate_auth::{Credentials, Crowded, Identity, Refusal, Throttle};

use crate::Shared;

/// Checks credentials on a blocking thread (at most a few at once), as the throttle allows:
/// a login past a suspect's pending cap fails unchecked, a failure's reply is held back as
/// long as the throttle (and the fleet) say, a success is answered at once. The password is
/// wiped when `credentials` is dropped.
pub(crate) async fn authenticate(
    shared: &Shared,
    source: IpAddr,
    credentials: Credentials,
) -> Result<Identity, Refusal> {
    let Some(authenticator) = shared.authenticator.clone() else {
        return Err(Refusal::BackEnd("no authentication back end".to_owned()));
    };
    // The throttle is asked once a verification slot is free, so that a burst of parallel
    // guesses from a clean source is judged by the failures of those checked before it.
    let Ok(permit) = shared.verifications.acquire().await else {
        return Err(Refusal::BackEnd("shutting down".to_owned()));
    };
    let mut attempt =
        ThrottledAttempt::begin(&shared.throttle, source, credentials.username_lossy())
            .map_err(Refusal::Throttled)?;
    let verdict = tokio::task::spawn_blocking(move || authenticator.verify(&credentials))
        .await
        .unwrap_or_else(|error| Err(Refusal::BackEnd(error.to_string())));
    drop(permit);
    let mut wait = attempt.finish(verdict.is_ok());
    if let (Err(Refusal::WrongPassword | Refusal::UnknownUser), Some(fleet)) =
        (&verdict, &shared.fleet)
    {
        // Failures on other nodes of a fleet count too.
        wait = wait.max(fleet.login_failed(&attempt.user).await);
    }
    tokio::time::sleep(wait).await;
    verdict
}

/// One checked login as the throttle sees it; a login abandoned midway (the client left,
/// the handshake timed out) counts as a failure. The throttle holds a failure pending until
/// its reply is due, whether or not this task still waits for it.
struct ThrottledAttempt<'a> {
    throttle: &'a Throttle,
    source: IpAddr,
    user: String,
    finished: bool,
}

impl<'a> ThrottledAttempt<'a> {
    fn begin(throttle: &'a Throttle, source: IpAddr, user: String) -> Result<Self, Crowded> {
        throttle.begin(Instant::now(), source, &user)?;
        Ok(Self {
            throttle,
            source,
            user,
            finished: false,
        })
    }

    /// Records the outcome; returns how long the reply waits.
    fn finish(&mut self, success: bool) -> Duration {
        self.finished = true;
        self.throttle
            .finish(Instant::now(), self.source, &self.user, success)
    }
}

impl Drop for ThrottledAttempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle
                .finish(Instant::now(), self.source, &self.user, false);
        }
    }
}
