//! How a session ended, in the words the access log and the metrics use, and its end
//! recorded in both: a leaf that `session` and `http` (whose forwarded requests end one
//! by one) share.

use socksgate_auth::Refusal;

use crate::access_log::AccessRecord;
use crate::command::AssociationEnd;
use crate::failure::Failure;
use crate::relay::RelayEnd;
use crate::Shared;

/// How a granted session ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// A CONNECT or BIND relay.
    Relay(RelayEnd),
    /// A UDP association.
    Association(AssociationEnd),
    /// An HTTP request forwarded and answered.
    Forwarded,
    /// An HTTP client's connection, whose requests were each recorded as they ended.
    Requests,
}

/// Records the end of `record`'s session in the metrics and (when on) the access log. An
/// HTTP client's connection whose requests were recorded one by one adds nothing.
pub(crate) fn record_end(shared: &Shared, record: &AccessRecord, result: Result<Ended, Failure>) {
    if matches!(result, Ok(Ended::Requests)) {
        return;
    }
    shared.metrics.session_ended(record, &ending(&result));
    if shared.access_log {
        log_end(record, result);
    }
}

/// The word for how a session ended (the access log's `outcome`, the metrics' label).
pub(crate) fn outcome_of(result: &Result<Ended, Failure>) -> &'static str {
    match result {
        Ok(Ended::Relay(RelayEnd::Closed)) => "closed",
        Ok(Ended::Relay(RelayEnd::Idle)) => "idle-timeout",
        Ok(Ended::Relay(RelayEnd::Error(_))) => "reset",
        Ok(Ended::Relay(RelayEnd::Halted)) => "quota-exceeded",
        Ok(Ended::Association(end)) => end.outcome(),
        Ok(Ended::Forwarded | Ended::Requests) => "closed",
        Err(failure) => failure.outcome(),
    }
}

/// How a session ended, for the metrics.
fn ending(result: &Result<Ended, Failure>) -> crate::metrics::Ending<'_> {
    let denied_by = match result {
        Err(Failure::Denied(rule) | Failure::ClientDenied(rule)) => Some(rule.as_str()),
        _ => None,
    };
    crate::metrics::Ending {
        outcome: outcome_of(result),
        denied_by,
        authentication_failed: matches!(
            result,
            Err(Failure::Authentication(_) | Failure::Gssapi(_))
        ),
        login_throttled: matches!(result, Err(Failure::Authentication(Refusal::Throttled(_)))),
    }
}

fn log_end(record: &AccessRecord, result: Result<Ended, Failure>) {
    let outcome = outcome_of(&result);
    match result {
        Ok(Ended::Relay(RelayEnd::Error(error))) => record.emit(outcome, Some(&error)),
        Ok(Ended::Association(end)) => record.emit(
            outcome,
            end.error().map(|error| error as &dyn std::fmt::Display),
        ),
        Err(failure) => {
            let detail = failure.detail();
            record.emit(
                outcome,
                detail.as_ref().map(|d| d as &dyn std::fmt::Display),
            )
        }
        Ok(Ended::Relay(RelayEnd::Halted)) => record.emit(outcome, Some(&"fleet.quota_per_user")),
        Ok(
            Ended::Relay(RelayEnd::Closed | RelayEnd::Idle) | Ended::Forwarded | Ended::Requests,
        ) => record.emit(outcome, None),
    }
}
