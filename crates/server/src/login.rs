//! RFC 1929 logins, as the throttle allows them: checked off the async threads, failures
//! held back, guessers capped (`socksgate_auth::Throttle`), and the fleet told.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use socksgate_auth::{Credentials, Crowded, Identity, Refusal, Throttle};

use crate::subject::Subject;
use crate::Shared;

/// Credentials (RFC 1929's, or HTTP's Basic) checked and, when they hold, the session's
/// proven user. A client certificate that already named the user makes credentials for
/// someone else fail unchecked, never taken over it; so does a back end that maps the name
/// to another user than the certificate's. The name the back end settled on (PAM may map
/// `BOB` to `bob`) is the one rules and limits see.
pub(crate) async fn log_in(
    shared: &Shared,
    subject: &mut Subject,
    credentials: Credentials,
) -> Result<(), Refusal> {
    const NOT_THE_CERTIFICATES: Refusal =
        Refusal::Unusable("credentials for another user than the client certificate's");
    let attempted = credentials.username_lossy();
    // The name tried and, below, the verdict; never the password. Debug-quoted: a client's
    // bytes never make a line of their own.
    tracing::debug!(user = ?attempted, "login attempt");
    let verdict = match subject.conflicts_with(&attempted) {
        Some(_) => {
            subject.claim(attempted, false);
            Err(NOT_THE_CERTIFICATES)
        }
        None => {
            subject.attempt(&attempted);
            let source = shared.source_group(subject.client().ip());
            authenticate(shared, source, credentials).await
        }
    };
    let proven =
        verdict.and_then(|identity| subject.prove(identity).map_err(|_| NOT_THE_CERTIFICATES));
    match &proven {
        Ok(()) => tracing::debug!("login accepted"),
        Err(refusal) => tracing::debug!(%refusal, "login refused"),
    }
    proven
}

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
    let user = credentials.username_lossy();
    // A login bound to fail unchecked does so before queueing for a verification slot (so
    // a flood of them does not hold the real users' logins up); the throttle decides for
    // good once a slot is free, judging a burst by the failures checked before it.
    if let Some(crowded) = shared.throttle.crowded(Instant::now(), source, &user) {
        return Err(Refusal::Throttled(crowded));
    }
    let Ok(permit) = shared.verifications.acquire().await else {
        return Err(Refusal::BackEnd("shutting down".to_owned()));
    };
    let mut attempt =
        ThrottledAttempt::begin(&shared.throttle, source, user).map_err(Refusal::Throttled)?;
    let verdict = tokio::task::spawn_blocking(move || authenticator.verify(&credentials))
        .await
        .unwrap_or_else(|error| Err(Refusal::BackEnd(error.to_string())));
    drop(permit);
    let finished = Instant::now();
    let wait = attempt.finish(finished, verdict.is_ok());
    if let (Err(Refusal::WrongPassword | Refusal::UnknownUser), Some(fleet)) =
        (&verdict, &shared.fleet)
    {
        // Failures on other nodes of a fleet count too (one counter whatever the case of
        // the name, as here), and hold the login pending here as long.
        let fleet_wait = fleet.login_failed(&attempt.user.to_lowercase()).await;
        shared
            .throttle
            .hold_longer(finished, source, &attempt.user, wait, fleet_wait);
        tokio::time::sleep(wait.max(fleet_wait).saturating_sub(finished.elapsed())).await;
    } else {
        tokio::time::sleep(wait).await;
    }
    verdict
}

/// One checked login as the throttle sees it; a login abandoned midway (the client left,
/// the handshake timed out) counts as a failure (but ends no trust). The throttle holds a failure pending until
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
    fn finish(&mut self, now: Instant, success: bool) -> Duration {
        self.finished = true;
        self.throttle.finish(now, self.source, &self.user, success)
    }
}

impl Drop for ThrottledAttempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle
                .abandon(Instant::now(), self.source, &self.user);
        }
    }
}
