//! Registered-claim checks shared by every verifier: `iss`, `aud`, `exp`/`nbf`/`iat` and `sub`,
//! run after the signature has been verified.
//!
//! These do not rely on any JWT library's defaults: each rule is explicit, and a claim of the
//! wrong JSON type is an error, never "absent".

use std::borrow::Cow;
use std::time::Duration;

use crate::claims::Claims;
use crate::error::AuthError;

/// The default clock-skew leeway: 30 seconds, the value existing deployments are configured for.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Rules for `exp`, `nbf` and `iat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRules {
    /// Tolerated clock skew, applied to every time comparison.
    pub leeway: Duration,
    /// The longest accepted `exp - iat`. When `iat` is absent, `exp - now` is used instead, so
    /// omitting `iat` cannot dodge the cap.
    pub max_lifetime: Option<Duration>,
    /// Whether `iat` must be present.
    pub require_iat: bool,
}

impl Default for TimeRules {
    fn default() -> Self {
        Self {
            leeway: DEFAULT_LEEWAY,
            max_lifetime: None,
            require_iat: false,
        }
    }
}

/// The validity window of a token that passed [`check_times`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `iat`, if present.
    pub issued_at: Option<i64>,
    /// `nbf`, if present.
    pub not_before: Option<i64>,
}

impl Validity {
    /// Whether the window holds at `now` with `leeway`: not expired (`now <= exp + leeway`),
    /// not before `nbf - leeway`, and not issued after `now + leeway`.
    ///
    /// [`check_times`] applies exactly this rule; a cache that re-checks a stored token on
    /// every hit calls it too, so the two can never disagree.
    pub fn is_current(&self, now: i64, leeway: Duration) -> bool {
        self.check(now, secs(leeway)).is_ok()
    }

    fn check(&self, now: i64, leeway: i64) -> Result<(), AuthError> {
        if now > self.expires_at.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if self
            .not_before
            .is_some_and(|nbf| now < nbf.saturating_sub(leeway))
        {
            return Err(AuthError::NotYetValid);
        }
        if self
            .issued_at
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(AuthError::IssuedInFuture);
        }
        Ok(())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Checks `exp` (required), `nbf` and `iat` against `now` with the leeway.
///
/// A token is expired when `now > exp + leeway` (so it is still valid at exactly that second),
/// not yet valid when `now < nbf - leeway`, and issued in the future when `iat > now + leeway`.
///
/// # Errors
/// `missing_claim`, `invalid_claim`, `expired`, `not_yet_valid`, `issued_in_future` or
/// `lifetime_too_long`.
pub fn check_times(claims: &Claims, now: i64, rules: &TimeRules) -> Result<Validity, AuthError> {
    let leeway = secs(rules.leeway);
    let exp = claims
        .expires_at()?
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("exp")))?;
    let validity = Validity {
        expires_at: exp,
        issued_at: claims.issued_at()?,
        not_before: claims.not_before()?,
    };
    validity.check(now, leeway)?;
    let iat = validity.issued_at;
    if iat.is_none() && rules.require_iat {
        return Err(AuthError::MissingClaim(Cow::Borrowed("iat")));
    }
    if let Some(max) = rules.max_lifetime {
        let lifetime = exp.saturating_sub(iat.unwrap_or(now));
        if lifetime > secs(max).saturating_add(if iat.is_some() { 0 } else { leeway }) {
            return Err(AuthError::LifetimeTooLong {
                lifetime_secs: lifetime,
                max_secs: max.as_secs(),
            });
        }
    }
    Ok(validity)
}

/// Checks that `iss` equals `expected` exactly (no normalisation: a trailing slash or a change
/// of case is a different issuer).
///
/// # Errors
/// `missing_claim`, `invalid_claim` or `issuer_mismatch`.
pub fn check_issuer(claims: &Claims, expected: &str) -> Result<(), AuthError> {
    match claims.issuer()? {
        None => Err(AuthError::MissingClaim(Cow::Borrowed("iss"))),
        Some(iss) if iss == expected => Ok(()),
        Some(_) => Err(AuthError::IssuerMismatch),
    }
}

/// Checks that `aud` contains one of `accepted`.
///
/// # Errors
/// `missing_claim` when there is no `aud`, `invalid_claim` for a wrong type, otherwise
/// `audience_mismatch`.
pub fn check_audience<S: AsRef<str>>(claims: &Claims, accepted: &[S]) -> Result<(), AuthError> {
    match claims.audience_names_any(accepted)? {
        None => Err(AuthError::MissingClaim(Cow::Borrowed("aud"))),
        Some(true) => Ok(()),
        Some(false) => Err(AuthError::AudienceMismatch),
    }
}

/// Returns the non-empty `sub`.
///
/// # Errors
/// `missing_claim` when absent or empty, `invalid_claim` when not a string.
pub fn require_subject(claims: &Claims) -> Result<&str, AuthError> {
    claims
        .subject()?
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("sub")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::{Value, json};

    fn claims(v: Value) -> Claims {
        Claims::try_from(v).unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    fn code(r: Result<Validity, AuthError>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn expiry_leeway_edges() {
        let rules = TimeRules::default();
        let c = claims(json!({"exp": NOW - 30}));
        assert_eq!(
            code(check_times(&c, NOW, &rules)),
            None,
            "valid at exp + leeway"
        );
        let c = claims(json!({"exp": NOW - 31}));
        assert_eq!(code(check_times(&c, NOW, &rules)), Some(ErrorCode::Expired));
        let strict = TimeRules {
            leeway: Duration::ZERO,
            ..rules
        };
        let c = claims(json!({"exp": NOW - 1}));
        assert_eq!(
            code(check_times(&c, NOW, &strict)),
            Some(ErrorCode::Expired)
        );
        let c = claims(json!({"exp": NOW}));
        assert_eq!(code(check_times(&c, NOW, &strict)), None);
    }

    #[test]
    fn exp_is_required_and_typed() {
        let rules = TimeRules::default();
        assert_eq!(
            code(check_times(&claims(json!({})), NOW, &rules)),
            Some(ErrorCode::MissingClaim)
        );
        let c = claims(json!({"exp": "9999999999"}));
        assert_eq!(
            code(check_times(&c, NOW, &rules)),
            Some(ErrorCode::InvalidClaim)
        );
        let c = claims(json!({"exp": NOW + 60, "nbf": "x"}));
        assert_eq!(
            code(check_times(&c, NOW, &rules)),
            Some(ErrorCode::InvalidClaim)
        );
        let c = claims(json!({"exp": NOW + 60, "iat": true}));
        assert_eq!(
            code(check_times(&c, NOW, &rules)),
            Some(ErrorCode::InvalidClaim)
        );
    }

    #[test]
    fn nbf_and_iat_leeway_edges() {
        let rules = TimeRules::default();
        let ok = claims(json!({"exp": NOW + 300, "nbf": NOW + 30, "iat": NOW + 30}));
        assert_eq!(code(check_times(&ok, NOW, &rules)), None);
        let early = claims(json!({"exp": NOW + 300, "nbf": NOW + 31}));
        assert_eq!(
            code(check_times(&early, NOW, &rules)),
            Some(ErrorCode::NotYetValid)
        );
        let future = claims(json!({"exp": NOW + 300, "iat": NOW + 31}));
        assert_eq!(
            code(check_times(&future, NOW, &rules)),
            Some(ErrorCode::IssuedInFuture)
        );
        let require = TimeRules {
            require_iat: true,
            ..rules
        };
        let no_iat = claims(json!({"exp": NOW + 300}));
        assert_eq!(
            code(check_times(&no_iat, NOW, &require)),
            Some(ErrorCode::MissingClaim)
        );
    }

    #[test]
    fn lifetime_cap_uses_iat_or_now() {
        let rules = TimeRules {
            max_lifetime: Some(Duration::from_secs(60)),
            ..TimeRules::default()
        };
        let ok = claims(json!({"exp": NOW + 60, "iat": NOW}));
        assert_eq!(code(check_times(&ok, NOW, &rules)), None);
        let long = claims(json!({"exp": NOW + 61, "iat": NOW}));
        assert_eq!(
            code(check_times(&long, NOW, &rules)),
            Some(ErrorCode::LifetimeTooLong)
        );
        let no_iat = claims(json!({"exp": NOW + 3600}));
        assert_eq!(
            code(check_times(&no_iat, NOW, &rules)),
            Some(ErrorCode::LifetimeTooLong)
        );
    }

    #[test]
    fn issuer_is_compared_exactly() {
        let c = claims(json!({"iss": "https://kc/realms/agentcube"}));
        assert!(check_issuer(&c, "https://kc/realms/agentcube").is_ok());
        for other in [
            "https://kc/realms/agentcube/",
            "https://KC/realms/agentcube",
            "https://kc/realms/Agentcube",
        ] {
            assert_eq!(
                check_issuer(&c, other).unwrap_err().code(),
                ErrorCode::IssuerMismatch
            );
        }
        assert_eq!(
            check_issuer(&claims(json!({})), "x").unwrap_err().code(),
            ErrorCode::MissingClaim
        );
        assert_eq!(
            check_issuer(&claims(json!({"iss": 1})), "x")
                .unwrap_err()
                .code(),
            ErrorCode::InvalidClaim
        );
    }

    #[test]
    fn audience_rules() {
        let accepted = ["agentcube-api"];
        assert!(check_audience(&claims(json!({"aud": "agentcube-api"})), &accepted).is_ok());
        assert!(
            check_audience(
                &claims(json!({"aud": ["account", "agentcube-api"]})),
                &accepted
            )
            .is_ok()
        );
        let account = claims(json!({"aud": "account"}));
        assert_eq!(
            check_audience(&account, &accepted).unwrap_err().code(),
            ErrorCode::AudienceMismatch
        );
        assert_eq!(
            check_audience(&claims(json!({})), &accepted)
                .unwrap_err()
                .code(),
            ErrorCode::MissingClaim
        );
        let none: [&str; 0] = [];
        assert_eq!(
            check_audience(&claims(json!({"aud": "x"})), &none)
                .unwrap_err()
                .code(),
            ErrorCode::AudienceMismatch
        );
    }

    #[test]
    fn subject_must_be_a_non_empty_string() {
        assert_eq!(require_subject(&claims(json!({"sub": "u"}))).unwrap(), "u");
        assert_eq!(
            require_subject(&claims(json!({"sub": ""})))
                .unwrap_err()
                .code(),
            ErrorCode::MissingClaim
        );
        assert_eq!(
            require_subject(&claims(json!({}))).unwrap_err().code(),
            ErrorCode::MissingClaim
        );
        assert_eq!(
            require_subject(&claims(json!({"sub": 1})))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidClaim
        );
    }
}
