//! `[fleet]`: limits shared by several socksgate nodes through Redis.

use std::time::Duration;

use toml::Spanned;

use crate::error::{ConfigError, Origin};
use crate::model::{FailMode, Fleet, LoginLimit, Quota, QuotaPeriod};
use crate::raw::RawFleet;
use crate::{count_field, required_duration, rules, text_field};

pub(crate) fn validate(raw: &RawFleet, origin: &Origin<'_>) -> Result<Option<Fleet>, ConfigError> {
    let Some(redis) = &raw.redis else {
        if let Some(field) = raw.first_setting() {
            return Err(ConfigError::new(origin, "the fleet's limits need `redis`")
                .field(format!("fleet.{field}")));
        }
        return Ok(None);
    };
    let url = redis.get_ref();
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix:")) {
        return Err(ConfigError::new(
            origin,
            "expected a Redis URL like \"redis://127.0.0.1:6379/0\"",
        )
        .at(origin, Some(redis.span()))
        .field("fleet.redis"));
    }
    let fail_mode = |value: &Option<Spanned<String>>, field: &str, default: FailMode| {
        text_field(
            value,
            field,
            "\"open\" or \"closed\"",
            origin,
            |text| match text {
                "open" => Some(FailMode::Open),
                "closed" => Some(FailMode::Closed),
                _ => None,
            },
        )
        .map(|mode| mode.unwrap_or(default))
    };
    let default_mode = fail_mode(&raw.on_redis_down, "fleet.on_redis_down", FailMode::Open)?;
    let quota =
        match rules::rate_field(raw.quota_per_user.as_ref(), "fleet.quota_per_user", origin)? {
            None => None,
            Some(bytes) => Some(Quota {
                bytes,
                period: text_field(
                    &raw.quota_period,
                    "fleet.quota_period",
                    "\"day\" or \"month\"",
                    origin,
                    |text| match text {
                        "day" => Some(QuotaPeriod::Day),
                        "month" => Some(QuotaPeriod::Month),
                        _ => None,
                    },
                )?
                .unwrap_or(QuotaPeriod::Day),
            }),
        };
    let logins = count_field(
        &raw.login_failures,
        "fleet.login_failures",
        "must be at least 1",
        origin,
    )?
    .map(|failures| {
        Ok::<_, ConfigError>(LoginLimit {
            failures,
            window: required_duration(
                &raw.login_window,
                "fleet.login_window",
                Duration::from_secs(15 * 60),
                origin,
            )?,
            delay: required_duration(
                &raw.login_delay,
                "fleet.login_delay",
                Duration::from_secs(5),
                origin,
            )?,
        })
    })
    .transpose()?;
    Ok(Some(Fleet {
        redis: url.clone(),
        node: raw.node.clone(),
        sync_interval: required_duration(
            &raw.sync_interval,
            "fleet.sync_interval",
            Duration::from_secs(1),
            origin,
        )?,
        max_sessions_per_user: count_field(
            &raw.max_sessions_per_user,
            "fleet.max_sessions_per_user",
            "must be at least 1",
            origin,
        )?,
        max_sessions_per_source: count_field(
            &raw.max_sessions_per_source,
            "fleet.max_sessions_per_source",
            "must be at least 1",
            origin,
        )?,
        quota,
        logins,
        sessions_on_redis_down: fail_mode(
            &raw.sessions_on_redis_down,
            "fleet.sessions_on_redis_down",
            default_mode,
        )?,
        quota_on_redis_down: fail_mode(
            &raw.quota_on_redis_down,
            "fleet.quota_on_redis_down",
            default_mode,
        )?,
        logins_on_redis_down: fail_mode(
            &raw.logins_on_redis_down,
            "fleet.logins_on_redis_down",
            default_mode,
        )?,
    }))
}

/// `[fleet]` as TOML; the Redis URL's password replaced when `redact`.
pub(crate) fn render(out: &mut String, fleet: &Fleet, redact: bool) {
    use std::fmt::Write;
    let redis = match (redact, fleet.redis.rsplit_once('@')) {
        (true, Some((_, host))) => {
            let scheme = fleet.redis.split("://").next().unwrap_or("redis");
            format!("{scheme}://REDACTED@{host}")
        }
        _ => fleet.redis.clone(),
    };
    let _ = writeln!(out, "\n[fleet]\nredis = {redis:?}");
    if let Some(node) = &fleet.node {
        let _ = writeln!(out, "node = {node:?}");
    }
    let _ = writeln!(
        out,
        "sync_interval = \"{}ms\"",
        fleet.sync_interval.as_millis()
    );
    if let Some(limit) = fleet.max_sessions_per_user {
        let _ = writeln!(out, "max_sessions_per_user = {limit}");
    }
    if let Some(limit) = fleet.max_sessions_per_source {
        let _ = writeln!(out, "max_sessions_per_source = {limit}");
    }
    if let Some(quota) = fleet.quota {
        let period = match quota.period {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        };
        let _ = writeln!(
            out,
            "quota_per_user = \"{}\"\nquota_period = \"{period}\"",
            quota.bytes
        );
    }
    if let Some(logins) = fleet.logins {
        let _ = writeln!(
            out,
            "login_failures = {}\nlogin_window = \"{}s\"\nlogin_delay = \"{}ms\"",
            logins.failures,
            logins.window.as_secs(),
            logins.delay.as_millis()
        );
    }
    let mode = |mode: FailMode| match mode {
        FailMode::Open => "open",
        FailMode::Closed => "closed",
    };
    let _ = writeln!(
        out,
        "sessions_on_redis_down = \"{}\"\nquota_on_redis_down = \"{}\"\nlogins_on_redis_down = \"{}\"",
        mode(fleet.sessions_on_redis_down),
        mode(fleet.quota_on_redis_down),
        mode(fleet.logins_on_redis_down)
    );
}
