//! agentcube-auth-core as a user sees it: only public items.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;

use agentcube_auth_core::{
    AuthError, ClaimMapper, Claims, Code, ErrorCode, KeycloakClaimMapper, KeysUnavailableReason,
    MalformedReason, Rejection, Requirement, Role, RoleHierarchy, ServiceError, TypeLocation,
    Untrusted,
};
use http::StatusCode;
use serde_json::{Value, json};

fn claims(v: Value) -> Claims {
    Claims::try_from(v).unwrap()
}

fn realm_hierarchy() -> RoleHierarchy {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/keycloak/agentcube-realm.json"
    ))
    .expect("the realm export is in deploy/keycloak");
    RoleHierarchy::from_keycloak_realm_json(&text).expect("the realm's composites form a hierarchy")
}

#[test]
fn the_realm_file_defines_admin_manage_invoke() {
    let h = realm_hierarchy();
    let r = Role::realm;
    assert!(h.implies(&r("admin"), &r("sandbox:manage")));
    assert!(h.implies(&r("admin"), &r("sandbox:invoke")));
    assert!(h.implies(&r("sandbox:manage"), &r("sandbox:invoke")));
    // The default role every user holds implies nothing, whatever the export lists for it.
    assert!(!h.implies(&r("default-roles-agentcube"), &r("sandbox:invoke")));
    assert!(!h.implies(&r("sandbox:invoke"), &r("sandbox:manage")));
    assert!(!h.implies(&r("sandbox:manage"), &r("admin")));
    assert!(!h.implies(&r("default-roles-agentcube"), &r("admin")));
}

#[test]
fn keycloak_token_to_requirement_decision() {
    let h = realm_hierarchy();
    let invoke = Requirement::realm_role("sandbox:invoke");
    let admin = Requirement::realm_role("admin");
    let mapper = KeycloakClaimMapper::new();

    // An admin whose token (unlike Keycloak's) lists only `admin`: the hierarchy grants invoke.
    let p = mapper
        .map(claims(
            json!({"iss": "i", "sub": "a", "realm_access": {"roles": ["admin"]}}),
        ))
        .unwrap();
    assert!(invoke.check(&p, &h).is_ok());
    assert!(admin.check(&p, &h).is_ok());

    // `admin` of another client is not our admin and implies nothing of ours.
    let p = mapper
        .map(claims(json!({
            "iss": "i", "sub": "b",
            "realm_access": {"roles": ["sandbox:invoke"]},
            "resource_access": {"some-other-client": {"roles": ["admin"]}},
        })))
        .unwrap();
    assert!(invoke.check(&p, &h).is_ok());
    let err = admin.check(&p, &h).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InsufficientRole);
    assert_eq!(
        err.to_string(),
        "insufficient permissions: missing role admin"
    );

    // No roles at all.
    let p = mapper.map(claims(json!({"iss": "i", "sub": "c"}))).unwrap();
    assert_eq!(
        invoke.check(&p, &h).unwrap_err().code(),
        ErrorCode::InsufficientRole
    );
}

fn example(code: ErrorCode) -> AuthError {
    match code {
        ErrorCode::MissingAuthorization => AuthError::MissingAuthorization,
        ErrorCode::InvalidAuthorizationFormat => AuthError::InvalidAuthorizationFormat,
        ErrorCode::EmptyBearerToken => AuthError::EmptyBearerToken,
        ErrorCode::Malformed => AuthError::Malformed(MalformedReason::SegmentCount),
        ErrorCode::TokenTooLarge => AuthError::TokenTooLarge {
            size: 9000,
            limit: 8192,
        },
        ErrorCode::AlgorithmNotAllowed => AuthError::AlgorithmNotAllowed(Untrusted::new("none")),
        ErrorCode::UnsupportedCriticalHeader => AuthError::UnsupportedCriticalHeader,
        ErrorCode::TokenTypeMismatch => AuthError::TokenTypeMismatch {
            location: TypeLocation::Payload,
            found: Untrusted::new("Refresh"),
        },
        ErrorCode::UnknownKid => AuthError::UnknownKid,
        ErrorCode::KeyAlgorithmMismatch => AuthError::KeyAlgorithmMismatch,
        ErrorCode::InvalidSignature => AuthError::InvalidSignature,
        ErrorCode::UnknownIssuer => AuthError::UnknownIssuer,
        ErrorCode::IssuerMismatch => AuthError::IssuerMismatch,
        ErrorCode::AudienceMismatch => AuthError::AudienceMismatch,
        ErrorCode::Expired => AuthError::Expired,
        ErrorCode::NotYetValid => AuthError::NotYetValid,
        ErrorCode::IssuedInFuture => AuthError::IssuedInFuture,
        ErrorCode::MissingClaim => AuthError::MissingClaim("sub".into()),
        ErrorCode::InvalidClaim => AuthError::InvalidClaim("exp".into()),
        ErrorCode::LifetimeTooLong => AuthError::LifetimeTooLong {
            lifetime_secs: 90_000,
            max_secs: 3600,
        },
        ErrorCode::AzpNotAllowed => AuthError::AzpNotAllowed,
        ErrorCode::TokenReplayed => AuthError::TokenReplayed,
        ErrorCode::KeysUnavailable => AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded),
        ErrorCode::InsufficientRole => AuthError::InsufficientRole(Role::realm("sandbox:invoke")),
        ErrorCode::ReplayGuardFull => AuthError::ReplayGuardFull,
        ErrorCode::InsufficientScope => AuthError::InsufficientScope("admin:write".into()),
        ErrorCode::InsufficientPermission => {
            AuthError::InsufficientPermission("reports:write".into())
        }
        ErrorCode::Custom => AuthError::custom(ServiceError::new(
            StatusCode::FORBIDDEN,
            Code::new("tenant_suspended"),
            "tenant is suspended",
        )),
        ErrorCode::TokenRevoked => AuthError::TokenRevoked,
        other => panic!("no example for {other}"),
    }
}

#[test]
fn every_code_has_a_stable_name_status_and_challenge() {
    let expected: [(&str, u16, Option<&str>); 29] = [
        ("missing_authorization", 401, Some("Bearer")),
        (
            "invalid_authorization_format",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "empty_bearer_token",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        ("malformed", 401, Some("Bearer error=\"invalid_token\"")),
        (
            "token_too_large",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "algorithm_not_allowed",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "unsupported_critical_header",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "token_type_mismatch",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        ("unknown_kid", 401, Some("Bearer error=\"invalid_token\"")),
        (
            "key_algorithm_mismatch",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "invalid_signature",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "unknown_issuer",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "issuer_mismatch",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "audience_mismatch",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        ("expired", 401, Some("Bearer error=\"invalid_token\"")),
        ("not_yet_valid", 401, Some("Bearer error=\"invalid_token\"")),
        (
            "issued_in_future",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        ("missing_claim", 401, Some("Bearer error=\"invalid_token\"")),
        ("invalid_claim", 401, Some("Bearer error=\"invalid_token\"")),
        (
            "lifetime_too_long",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "azp_not_allowed",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "token_replayed",
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        ("keys_unavailable", 503, None),
        (
            "insufficient_role",
            403,
            Some("Bearer error=\"insufficient_scope\""),
        ),
        ("replay_guard_full", 503, None),
        (
            "insufficient_scope",
            403,
            Some("Bearer error=\"insufficient_scope\""),
        ),
        (
            "insufficient_permission",
            403,
            Some("Bearer error=\"insufficient_scope\""),
        ),
        ("custom", 403, None),
        ("token_revoked", 401, Some("Bearer error=\"invalid_token\"")),
    ];
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    let mut names = HashSet::new();
    for (code, (name, status, challenge)) in ErrorCode::ALL.into_iter().zip(expected) {
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert!(names.insert(name), "duplicate code {name}");
        let err = example(code);
        assert_eq!(err.code(), code);
        assert_eq!(err.http_status(), status, "{name}");
        assert_eq!(err.www_authenticate(), challenge, "{name}");
        let message = err.to_string();
        assert!(!message.ends_with('.'), "{message}");
        assert_eq!(
            message.chars().next().map(char::is_lowercase),
            Some(true),
            "{message}"
        );
    }
}

#[test]
fn public_messages_hide_token_details_but_keep_the_compatible_texts() {
    assert_eq!(
        AuthError::Expired.public_message(),
        "invalid or expired token"
    );
    assert_eq!(
        AuthError::InvalidSignature.public_message(),
        "invalid or expired token"
    );
    assert_eq!(
        AuthError::MissingAuthorization.public_message(),
        "missing authorization header"
    );
    assert_eq!(
        AuthError::InvalidAuthorizationFormat.public_message(),
        "invalid authorization header format"
    );
    assert_eq!(
        AuthError::EmptyBearerToken.public_message(),
        "empty bearer token"
    );
    assert_eq!(
        AuthError::InsufficientRole(Role::realm("sandbox:invoke")).public_message(),
        "insufficient permissions: missing role sandbox:invoke"
    );
}

#[test]
fn attacker_chosen_values_are_bounded_and_sanitised() {
    let hostile = format!("{}\u{7}\n\u{202e}", "A".repeat(1000));
    let err = AuthError::AlgorithmNotAllowed(Untrusted::new(&hostile));
    let shown = err.to_string();
    assert!(shown.len() < 100, "{shown}");
    assert!(!shown.contains('\n') && !shown.contains('\u{7}'));
    let short = Untrusted::new("ab\ncd\u{202e}");
    assert_eq!(short.as_str(), "ab?cd?");
}

#[test]
fn the_challenge_names_the_missing_scope_when_it_can() {
    let challenge = |e: AuthError| e.challenge().map(|c| c.into_owned());
    assert_eq!(
        challenge(AuthError::InsufficientScope("admin:write".into())).as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="admin:write""#)
    );
    // A name that cannot be quoted as a scope token is left out, never escaped into the header.
    for bad in ["two words", "quo\"te", "back\\slash", "", "caf\u{e9}"] {
        assert_eq!(
            challenge(AuthError::InsufficientScope(bad.into())).as_deref(),
            Some(r#"Bearer error="insufficient_scope""#),
            "{bad:?}"
        );
    }
    // Every other error's challenge is its code's.
    for code in ErrorCode::ALL {
        if matches!(code, ErrorCode::InsufficientScope | ErrorCode::Custom) {
            continue;
        }
        let err = example(code);
        assert_eq!(challenge(err.clone()).as_deref(), err.www_authenticate());
        assert_eq!(Rejection::code(&err), code.code());
    }
}

#[test]
fn a_custom_rejection_answers_as_the_service_error_it_wraps() {
    let service = ServiceError::new(
        StatusCode::PAYMENT_REQUIRED,
        Code::new("plan_expired"),
        "plan expired",
    )
    .with_challenge(String::from("Bearer realm=\"billing\""));
    let err = AuthError::from(service.clone());
    assert_eq!(err.code(), ErrorCode::Custom);
    assert_eq!(err.http_status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(err.to_service_error(), service);
    assert_eq!(err.to_string(), "plan expired");
}
