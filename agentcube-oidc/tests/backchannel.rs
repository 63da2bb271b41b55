//! Back-channel logout: a verified logout token revokes the session's access tokens, on fresh
//! verifications and on verified-token cache hits; every rule of the logout token refuses with
//! its own error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::borrow::Cow;
use std::sync::Arc;

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{
    AuthError, Clock as _, ErrorCode, ManualClock, MemoryRevocationSet, Revocation, RevocationKind,
    RevocationSet, RevocationTarget, TypeLocation, Untrusted,
};
use agentcube_oidc::test_util::{MockIssuer, TestKey};
use agentcube_oidc::{
    BACKCHANNEL_LOGOUT_EVENT, BackchannelLogout, CacheConfig, ConfigError, LogoutError,
    MultiIssuerVerifier, OidcVerifier,
};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

/// A change to the claims of a valid logout token.
type ClaimsEdit = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;
const CLIENT: &str = "agentcube-cli";
const SID: &str = "0b7e4c2a-5d6f-4a1b-8c9d-aa11bb22cc33";
const USER: &str = "5f0c8a2e-1111-4222-8333-944455556666";

struct Fixture {
    idp: MockIssuer,
    clock: ManualClock,
    revocations: Arc<MemoryRevocationSet>,
    verifier: OidcVerifier,
    logout: BackchannelLogout,
}

async fn fixture() -> Fixture {
    let clock = ManualClock::new(NOW);
    let idp = MockIssuer::builder().clock(clock.clone()).start().await;
    let revocations = Arc::new(MemoryRevocationSet::new().with_clock(clock.clone()));
    let verifier = OidcVerifier::new(idp.config().revocations(revocations.clone())).unwrap();
    let logout = BackchannelLogout::new([&verifier], [CLIENT]).unwrap();
    Fixture {
        idp,
        clock,
        revocations,
        verifier,
        logout,
    }
}

impl Fixture {
    fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// An access token of `USER` in session `sid`, issued now.
    fn access_token(&self, sid: &str) -> String {
        self.idp.token().subject(USER).claim("sid", sid).sign()
    }

    /// The claims of a valid logout token for `SID` and `USER`, as Keycloak sends them.
    fn logout_claims(&self) -> Value {
        let now = self.now();
        json!({
            "iss": self.idp.issuer(),
            "aud": CLIENT,
            "iat": now,
            "exp": now + 300,
            "jti": format!("{:016x}", rand_u64()),
            "typ": "Logout",
            "sid": SID,
            "sub": USER,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        })
    }

    fn header(&self) -> Value {
        let key = self.idp.signing_key();
        json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "logout+jwt"})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.idp.signing_key().sign_compact(header, claims)
    }

    /// A logout token with `edit` applied to the valid claims.
    fn logout_token(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.logout_claims();
        edit(claims.as_object_mut().unwrap());
        self.sign(&self.header(), &claims)
    }

    async fn refused(&self, token: &str) -> LogoutError {
        self.logout.receive(token).await.unwrap_err()
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

#[tokio::test]
async fn a_logout_revokes_the_session_on_cache_hits_and_fresh_verifications() {
    let f = fixture().await;
    let token = f.access_token(SID);
    let other_session = f.access_token("another-session");
    assert_eq!(f.verifier.verify(&token).await.unwrap().subject(), USER);
    assert!(
        f.verifier
            .verify_with_details(&token)
            .await
            .unwrap()
            .from_cache
    );
    f.verifier.verify(&other_session).await.unwrap();

    f.clock.advance(5);
    let done = f.logout.receive(&f.logout_token(|_| {})).await.unwrap();
    assert_eq!(
        done.revocation.target(),
        &RevocationTarget::Session(SID.into())
    );
    assert_eq!(done.revocation.revoked_at(), NOW + 5);
    assert_eq!(done.subject.as_deref(), Some(USER));
    assert!(done.has_session);
    assert_eq!(f.revocations.len(), 1);

    // What would have been a cache hit is refused, and keeps being refused.
    let hits = f.verifier.stats().cache_hits;
    for _ in 0..3 {
        assert_eq!(
            f.verifier.verify(&token).await.unwrap_err(),
            AuthError::TokenRevoked
        );
    }
    assert_eq!(f.verifier.stats().cache_hits, hits + 3);
    // A verifier without a cache (a fresh verification) refuses it too.
    let uncached = OidcVerifier::new(
        f.idp
            .config()
            .cache(CacheConfig::disabled())
            .revocations(f.revocations.clone()),
    )
    .unwrap();
    assert_eq!(
        uncached.verify(&token).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // The user's other session is not affected.
    f.verifier.verify(&other_session).await.unwrap();
    uncached.verify(&other_session).await.unwrap();
    assert_eq!(
        f.verifier.stats().rejections.get(&ErrorCode::TokenRevoked),
        Some(&3)
    );
}

#[tokio::test]
async fn a_logout_without_sid_revokes_the_subject_until_the_logout_time() {
    let f = fixture().await;
    let before = f.access_token("s-a");
    f.verifier.verify(&before).await.unwrap();
    let done = f
        .logout
        .receive(&f.logout_token(|c| {
            c.remove("sid");
        }))
        .await
        .unwrap();
    assert_eq!(
        done.revocation.target(),
        &RevocationTarget::Subject(USER.into())
    );
    assert!(!done.has_session);
    assert_eq!(
        f.verifier.verify(&before).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // Issued in the same second as the logout: refused too.
    let same_second = f.access_token("s-b");
    assert_eq!(
        f.verifier.verify(&same_second).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // A login after the logout works.
    f.clock.advance(1);
    let after = f.access_token("s-c");
    assert_eq!(f.verifier.verify(&after).await.unwrap().subject(), USER);
}

#[tokio::test]
async fn manual_revocations_of_a_subject_or_client_refuse_cache_hits_of_a_multi_issuer_verifier() {
    let clock = ManualClock::new(NOW);
    let a = MockIssuer::builder().clock(clock.clone()).start().await;
    let b = MockIssuer::builder()
        .clock(clock.clone())
        .realm("other")
        .start()
        .await;
    let revocations: Arc<dyn RevocationSet> =
        Arc::new(MemoryRevocationSet::new().with_clock(clock.clone()));
    let build = |idp: &MockIssuer| {
        OidcVerifier::new(idp.config().revocations(Arc::clone(&revocations))).unwrap()
    };
    let multi = MultiIssuerVerifier::new([build(&a), build(&b)]).unwrap();
    let service = a.token().service_account("ci-bot").sign();
    let same_client_elsewhere = b.token().service_account("ci-bot").sign();
    let user = a.token().subject(USER).sign();
    for token in [&service, &same_client_elsewhere, &user] {
        multi.verify(token).await.unwrap();
        multi.verify(token).await.unwrap();
    }
    revocations
        .revoke(Revocation::new(
            a.issuer(),
            RevocationTarget::Client("ci-bot".into()),
            NOW,
        ))
        .await
        .unwrap();
    assert_eq!(
        multi.verify(&service).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // The same client id of another issuer is another client.
    multi.verify(&same_client_elsewhere).await.unwrap();
    multi.verify(&user).await.unwrap();
    revocations
        .revoke(Revocation::new(
            a.issuer(),
            RevocationTarget::Subject(USER.into()),
            NOW,
        ))
        .await
        .unwrap();
    assert_eq!(
        multi.verify(&user).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // A new token of the service account, issued after the revocation, is accepted.
    clock.advance(1);
    let renewed = a.token().service_account("ci-bot").sign();
    multi.verify(&renewed).await.unwrap();
}

#[tokio::test]
async fn the_header_typ_is_logout_jwt_or_absent() {
    let f = fixture().await;
    for typ in [Some("logout+jwt"), Some("application/logout+jwt"), None] {
        let mut header = f.header();
        match typ {
            Some(typ) => header["typ"] = json!(typ),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        }
        let token = f.sign(&header, &f.logout_claims());
        f.logout.receive(&token).await.unwrap();
    }
    for typ in ["JWT", "at+jwt", "secevent+jwt"] {
        let mut header = f.header();
        header["typ"] = json!(typ);
        let token = f.sign(&header, &f.logout_claims());
        assert_eq!(
            f.refused(&token).await,
            LogoutError::Token(AuthError::TokenTypeMismatch {
                location: TypeLocation::Header,
                found: Untrusted::new(typ),
            }),
            "{typ}"
        );
    }
    // An access token is no logout token.
    let access = f.access_token(SID);
    assert!(matches!(
        f.refused(&access).await,
        LogoutError::Token(AuthError::TokenTypeMismatch {
            location: TypeLocation::Header,
            ..
        })
    ));
}

#[tokio::test]
async fn the_event_must_be_there() {
    let f = fixture().await;
    let cases: [fn(&mut serde_json::Map<String, Value>); 5] = [
        |c| {
            c.remove("events");
        },
        |c| {
            c.insert("events".into(), json!({}));
        },
        |c| {
            c.insert(
                "events".into(),
                json!({"http://schemas.openid.net/event/other": {}}),
            );
        },
        |c| {
            c.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: true}));
        },
        |c| {
            c.insert("events".into(), json!([BACKCHANNEL_LOGOUT_EVENT]));
        },
    ];
    for (i, edit) in cases.into_iter().enumerate() {
        let err = f.refused(&f.logout_token(edit)).await;
        assert_eq!(err, LogoutError::MissingEvent, "case {i}");
        assert_eq!(err.code(), "missing_logout_event");
    }
    // Other events beside it are fine.
    f.logout
        .receive(&f.logout_token(|c| {
            c.insert(
                "events".into(),
                json!({BACKCHANNEL_LOGOUT_EVENT: {}, "revoke_offline_access": true}),
            );
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_nonce_is_refused() {
    let f = fixture().await;
    let err = f
        .refused(&f.logout_token(|c| {
            c.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
        }))
        .await;
    assert_eq!(err, LogoutError::NoncePresent);
    assert_eq!(err.code(), "nonce_present");
    assert!(f.revocations.is_empty());
}

#[tokio::test]
async fn a_jti_is_required_and_used_once() {
    let f = fixture().await;
    let token = f.logout_token(|_| {});
    f.logout.receive(&token).await.unwrap();
    assert_eq!(
        f.refused(&token).await,
        LogoutError::Token(AuthError::TokenReplayed)
    );
    // Still within the leeway: still refused as a replay.
    f.clock.advance(30);
    assert_eq!(
        f.refused(&token).await,
        LogoutError::Token(AuthError::TokenReplayed)
    );
    // Past it: refused for its age.
    f.clock.advance(1);
    assert_eq!(
        f.refused(&token).await,
        LogoutError::Token(AuthError::Expired)
    );
    for jti in [None, Some("")] {
        let err = f
            .refused(&f.logout_token(|c| match jti {
                None => {
                    c.remove("jti");
                }
                Some(v) => {
                    c.insert("jti".into(), json!(v));
                }
            }))
            .await;
        assert_eq!(
            err,
            LogoutError::Token(AuthError::MissingClaim(Cow::Borrowed("jti")))
        );
    }
}

#[tokio::test]
async fn the_audience_is_the_receiving_client() {
    let f = fixture().await;
    for aud in [json!("agentcube-api"), json!(["account", "agentcube-app"])] {
        let err = f
            .refused(&f.logout_token(|c| {
                c.insert("aud".into(), aud.clone());
            }))
            .await;
        assert_eq!(
            err,
            LogoutError::Token(AuthError::AudienceMismatch),
            "{aud}"
        );
        assert_eq!(err.code(), "audience_mismatch");
    }
    f.logout
        .receive(&f.logout_token(|c| {
            c.insert("aud".into(), json!(["other", CLIENT]));
        }))
        .await
        .unwrap();
    let err = f
        .refused(&f.logout_token(|c| {
            c.remove("aud");
        }))
        .await;
    assert_eq!(
        err,
        LogoutError::Token(AuthError::MissingClaim(Cow::Borrowed("aud")))
    );
}

#[tokio::test]
async fn sid_or_sub_must_be_named() {
    let f = fixture().await;
    for empty in [None, Some("")] {
        let err = f
            .refused(&f.logout_token(|c| {
                c.remove("sid");
                c.remove("sub");
                if let Some(v) = empty {
                    c.insert("sid".into(), json!(v));
                    c.insert("sub".into(), json!(v));
                }
            }))
            .await;
        assert_eq!(err, LogoutError::MissingSessionAndSubject);
        assert_eq!(err.code(), "missing_sid_and_sub");
    }
    // A sid alone is enough.
    let done = f
        .logout
        .receive(&f.logout_token(|c| {
            c.remove("sub");
        }))
        .await
        .unwrap();
    assert_eq!(done.revocation.target().kind(), RevocationKind::Session);
    assert_eq!(done.subject, None);
}

#[tokio::test]
async fn times_issuer_payload_type_and_signature_are_checked() {
    let f = fixture().await;
    let now = f.now();
    let edits: Vec<(ClaimsEdit, LogoutError)> = vec![
        (
            Box::new(|c| {
                c.remove("iat");
            }),
            LogoutError::Token(AuthError::MissingClaim(Cow::Borrowed("iat"))),
        ),
        (
            Box::new(move |c| {
                c.insert("iat".into(), json!(now - 31));
            }),
            LogoutError::Token(AuthError::Expired),
        ),
        (
            Box::new(move |c| {
                c.insert("iat".into(), json!(now + 31));
            }),
            LogoutError::Token(AuthError::IssuedInFuture),
        ),
        (
            Box::new(move |c| {
                c.insert("exp".into(), json!(now - 31));
            }),
            LogoutError::Token(AuthError::Expired),
        ),
        (
            Box::new(move |c| {
                c.insert("iat".into(), json!(now.to_string()));
            }),
            LogoutError::Token(AuthError::InvalidClaim(Cow::Borrowed("iat"))),
        ),
        (
            Box::new(|c| {
                c.insert("iss".into(), json!("https://evil.example/realms/agentcube"));
            }),
            LogoutError::Token(AuthError::IssuerMismatch),
        ),
        (
            Box::new(|c| {
                c.insert("typ".into(), json!("Bearer"));
            }),
            LogoutError::Token(AuthError::TokenTypeMismatch {
                location: TypeLocation::Payload,
                found: Untrusted::new("Bearer"),
            }),
        ),
        (
            Box::new(|c| {
                c.insert("sid".into(), json!(42));
            }),
            LogoutError::Token(AuthError::InvalidClaim(Cow::Borrowed("sid"))),
        ),
    ];
    for (i, (edit, expected)) in edits.into_iter().enumerate() {
        assert_eq!(f.refused(&f.logout_token(edit)).await, expected, "case {i}");
    }
    // Without Keycloak's payload typ: accepted.
    f.logout
        .receive(&f.logout_token(|c| {
            c.remove("typ");
            c.remove("exp");
        }))
        .await
        .unwrap();

    // Another key, same kid: the signature fails; an unknown kid is unknown.
    let stranger = TestKey::generate(Algorithm::RS256).with_kid(f.idp.signing_key().kid());
    let forged = stranger.sign_compact(&f.header(), &f.logout_claims());
    assert_eq!(
        f.refused(&forged).await,
        LogoutError::Token(AuthError::InvalidSignature)
    );
    let unknown = TestKey::generate(Algorithm::RS256).with_kid("not-published");
    let mut header = f.header();
    header["kid"] = json!("not-published");
    let token = unknown.sign_compact(&header, &f.logout_claims());
    assert_eq!(
        f.refused(&token).await,
        LogoutError::Token(AuthError::UnknownKid)
    );
    // alg none never reaches a key.
    let mut header = f.header();
    header["alg"] = json!("none");
    let body = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!("{}.{}.", body(&header), body(&f.logout_claims()));
    assert!(matches!(
        f.refused(&unsigned).await,
        LogoutError::Token(AuthError::AlgorithmNotAllowed(_))
    ));
    assert!(f.revocations.len() <= 1);
}

#[tokio::test]
async fn the_form_carries_exactly_one_logout_token() {
    let f = fixture().await;
    let token = f.logout_token(|_| {});
    for body in [
        String::new(),
        "token=abc".to_owned(),
        "logout_token=".to_owned(),
        format!("logout_token={token}&logout_token={token}"),
    ] {
        assert_eq!(
            f.logout.receive_form(body.as_bytes()).await.unwrap_err(),
            LogoutError::InvalidRequest
        );
    }
    let done = f
        .logout
        .receive_form(format!("logout_token={token}").as_bytes())
        .await
        .unwrap();
    assert_eq!(done.issuer(), f.idp.issuer());
    let body: Value = serde_json::from_str(&LogoutError::InvalidRequest.to_json()).unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn receivers_need_a_revocation_set_and_a_client_id_and_route_by_issuer() {
    let clock = ManualClock::new(NOW);
    let a = MockIssuer::builder().clock(clock.clone()).start().await;
    let b = MockIssuer::builder()
        .clock(clock.clone())
        .realm("other")
        .start()
        .await;
    let plain = a.verifier();
    assert_eq!(
        BackchannelLogout::new([&plain], [CLIENT]).unwrap_err(),
        ConfigError::NoRevocationSet
    );
    let set = Arc::new(MemoryRevocationSet::new().with_clock(clock.clone()));
    let va = OidcVerifier::new(a.config().revocations(set.clone())).unwrap();
    let vb = OidcVerifier::new(b.config().revocations(set.clone())).unwrap();
    assert_eq!(
        BackchannelLogout::new([&va], Vec::<String>::new()).unwrap_err(),
        ConfigError::NoAudience
    );
    assert_eq!(
        BackchannelLogout::new([&va, &va], [CLIENT]).unwrap_err(),
        ConfigError::DuplicateIssuer
    );
    assert_eq!(
        BackchannelLogout::new(Vec::<&OidcVerifier>::new(), [CLIENT]).unwrap_err(),
        ConfigError::NoIssuers
    );
    let logout = BackchannelLogout::new([&va, &vb], [CLIENT]).unwrap();
    let claims = |idp: &MockIssuer| {
        json!({
            "iss": idp.issuer(), "aud": CLIENT, "iat": NOW, "jti": format!("{:x}", rand_u64()),
            "sub": USER, "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        })
    };
    let header = |idp: &MockIssuer| {
        let key = idp.signing_key();
        json!({"alg": key.algorithm().as_str(), "kid": key.kid()})
    };
    let from_b = b.signing_key().sign_compact(&header(&b), &claims(&b));
    let done = logout.receive(&from_b).await.unwrap();
    assert_eq!(done.issuer(), b.issuer());
    let user_of_a = a.token().subject(USER).sign();
    let user_of_b = b.token().subject(USER).sign();
    va.verify(&user_of_a).await.unwrap();
    assert_eq!(
        vb.verify(&user_of_b).await.unwrap_err(),
        AuthError::TokenRevoked
    );
    // Signed by b's key but claiming a: a's keys do not know it.
    let mut forged_claims = claims(&b);
    forged_claims["iss"] = json!(a.issuer());
    let forged = b.signing_key().sign_compact(&header(&b), &forged_claims);
    assert!(matches!(
        logout.receive(&forged).await.unwrap_err(),
        LogoutError::Token(AuthError::UnknownKid | AuthError::InvalidSignature)
    ));
    let mut unknown = claims(&b);
    unknown["iss"] = json!("https://nobody.example");
    let token = b.signing_key().sign_compact(&header(&b), &unknown);
    assert_eq!(
        logout.receive(&token).await.unwrap_err(),
        LogoutError::Token(AuthError::UnknownIssuer)
    );
}
