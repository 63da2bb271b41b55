//! Revocation and the minting cache: a revoked principal's cached tokens are dropped, nobody
//! else's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{
    ClaimMapper, Claims, KeycloakClaimMapper, ManualClock, Principal, Revocation, RevocationTarget,
};
use agentcube_identity::{KeyRing, SigningKey, TokenMinter};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://keycloak.example/realms/agentcube";

/// A principal as the verifier builds it from a Keycloak token (its claims kept).
fn principal(sub: &str, sid: &str, azp: &str) -> Principal {
    let claims = Claims::try_from(json!({
        "iss": ISS, "sub": sub, "sid": sid, "azp": azp, "iat": NOW - 10,
        "email": format!("{sub}@example.com"), "email_verified": true,
    }))
    .unwrap();
    KeycloakClaimMapper::new().map(claims).unwrap()
}

fn minter() -> TokenMinter {
    TokenMinter::new(KeyRing::new(
        SigningKey::generate(Algorithm::EdDSA).unwrap(),
    ))
    .with_clock(ManualClock::new(NOW))
}

#[test]
fn forget_drops_every_token_of_the_subject_and_only_those() {
    let m = minter();
    let (alice, bob) = (
        principal("alice", "s-a", "agentcube-cli"),
        principal("bob", "s-b", "agentcube-cli"),
    );
    let a_identity = m.identity_token(&alice).unwrap();
    let a_sandbox = m.sandbox_token(&alice, "session-1").unwrap();
    let b_identity = m.identity_token(&bob).unwrap();
    assert_eq!(m.cached_tokens(), 3);
    assert_eq!(m.forget(ISS, "alice"), 2);
    assert_eq!(m.forget("https://other.example", "bob"), 0);
    assert!(!m.identity_token(&alice).unwrap().same_token(&a_identity));
    assert!(
        !m.sandbox_token(&alice, "session-1")
            .unwrap()
            .same_token(&a_sandbox)
    );
    assert!(m.identity_token(&bob).unwrap().same_token(&b_identity));
}

#[test]
fn forget_revoked_matches_session_subject_and_client() {
    let m = minter();
    let alice = principal("alice", "s-a", "agentcube-cli");
    let bot = principal("bot", "s-bot", "ci-bot");
    m.identity_token(&alice).unwrap();
    m.identity_token(&bot).unwrap();
    let revoke = |target| Revocation::new(ISS, target, NOW);
    assert_eq!(
        m.forget_revoked(&revoke(RevocationTarget::Session("s-other".into()))),
        0
    );
    assert_eq!(
        m.forget_revoked(&revoke(RevocationTarget::Session("s-a".into()))),
        1
    );
    assert_eq!(
        m.forget_revoked(&revoke(RevocationTarget::Client("agentcube-cli".into()))),
        0
    );
    // Revoked before the token was issued: nothing to drop.
    assert_eq!(
        m.forget_revoked(&Revocation::new(
            ISS,
            RevocationTarget::Client("ci-bot".into()),
            NOW - 20
        )),
        0
    );
    assert_eq!(
        m.forget_revoked(&revoke(RevocationTarget::Client("ci-bot".into()))),
        1
    );
    assert_eq!(m.cached_tokens(), 0);
}
