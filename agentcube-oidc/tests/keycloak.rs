//! The verifier against a real Keycloak 26 with the `agentcube` realm
//! (`deploy/keycloak/agentcube-realm.json`), started by `scripts/with-services.sh`:
//!
//! ```sh
//! scripts/with-services.sh cargo test -p agentcube-oidc --test keycloak
//! ```
//!
//! Without `AGENTCUBE_KEYCLOAK_URL` each test prints a skip notice and passes, except under CI
//! (`CI` set), where a missing Keycloak is a failure.
//!
//! Covered (issue 4): discovery and JWKS (the `use: enc` RSA-OAEP key is skipped), the
//! client_credentials tokens of `agentcube-app`/`agentcube-admin` (principal, roles, the
//! `sandbox:invoke` requirement) and of `agentcube-router` (no `aud`), ID and refresh tokens
//! refused as access tokens, key rotation through the Admin REST API, ES256, ES512 (P-521) and
//! EdDSA key providers against the algorithm allowlist, and the role hierarchy of the realm file
//! against
//! the roles Keycloak puts into tokens.
//!
//! The tests of one binary run concurrently against one Keycloak. Those that change realm keys
//! (rotation, ES256/ES512/EdDSA) work in their own realm, a copy of the production realm file imported
//! through the Admin REST API with fresh client secrets, and delete it at the end. Test users and
//! test clients are added at run time; the realm file is never modified.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_auth_core::{
    AuthError, ErrorCode, Principal, Requirement, Role, RoleHierarchy, RoleSet, TokenVerifier,
    TypeLocation,
};
use agentcube_oidc::{
    KeyStoreConfig, MultiIssuerVerifier, OidcConfig, OidcVerifier, RefreshOutcome,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{
    Keycloak, REALM_FILE, audiences, client_credentials_grant, client_token, discovery, header_of,
    jwks, keycloak, kid_of, payload_of, realm_roles_of, with_header,
};
use tokio::time::Instant;

/// The token endpoint's JSON answer to a client_credentials grant.
async fn grant(kc: &Keycloak, client: &str, secret: &str, scope: Option<&str>) -> Value {
    client_credentials_grant(&kc.issuer, client, secret, scope).await
}

async fn access_token(kc: &Keycloak, client: &str, secret: &str) -> String {
    client_token(&kc.issuer, client, secret).await
}

#[tokio::test]
async fn keycloak_access_tokens_verify_with_the_defaults() {
    let Some(kc) = keycloak("keycloak_access_tokens_verify_with_the_defaults") else {
        return;
    };
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    assert!(!verifier.is_ready());
    // Keycloak publishes an RSA-OAEP encryption key beside its signing keys: skipped, not fatal.
    match verifier.refresh_keys().await.unwrap() {
        RefreshOutcome::Updated { keys, skipped } => {
            assert!(keys >= 1, "{keys}");
            assert!(skipped >= 1, "the enc key is skipped ({skipped})");
        }
        other => panic!("{other:?}"),
    }

    let app = verifier
        .verify(&access_token(&kc, "agentcube-app", &kc.app_secret).await)
        .await
        .unwrap();
    assert_eq!(app.issuer(), kc.issuer);
    assert!(app.is_service_account());
    assert_eq!(app.client_id(), Some("agentcube-app"));
    assert!(app.roles().contains_realm("sandbox:invoke"));
    assert!(!app.roles().contains_realm("admin"));

    // Keycloak expands composites: admin implies the others.
    let admin = verifier
        .verify(&access_token(&kc, "agentcube-admin", &kc.admin_secret).await)
        .await
        .unwrap();
    for role in ["admin", "sandbox:manage", "sandbox:invoke"] {
        assert!(admin.roles().contains_realm(role), "{role}");
    }

    // The router's own service account has no agentcube-api audience.
    let router = access_token(&kc, "agentcube-router", &kc.router_secret).await;
    // (Keycloak then sends no `aud` at all, or only others.)
    let err = verifier.verify(&router).await.unwrap_err();
    assert!(
        err == AuthError::MissingClaim("aud".into()) || err.code() == ErrorCode::AudienceMismatch,
        "{err:?}"
    );

    let stats = verifier.stats();
    assert_eq!(stats.keys.discovery_fetches, 1);
    assert_eq!(stats.keys.fetches_ok, 1, "no refresh after the prefetch");
    assert_eq!(stats.accepted, 2);
}

#[tokio::test]
async fn keycloak_rejections() {
    let Some(kc) = keycloak("keycloak_rejections") else {
        return;
    };
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let token = access_token(&kc, "agentcube-app", &kc.app_secret).await;
    verifier.verify(&token).await.unwrap();

    // A tampered payload.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["realm_access"]["roles"] = serde_json::json!(["admin"]);
        URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    parts[1] = &forged_payload;
    assert_eq!(
        verifier.verify(&parts.join(".")).await.unwrap_err(),
        AuthError::InvalidSignature
    );

    // The issuer with a trailing slash is another issuer.
    let slash = OidcVerifier::new(
        OidcConfig::new(format!("{}/", kc.issuer))
            .discovery_url(format!("{}/.well-known/openid-configuration", kc.issuer)),
    )
    .unwrap();
    // Discovery says the issuer is the one without the slash: the key store refuses it.
    assert_eq!(
        slash.refresh_keys().await.unwrap_err().code(),
        "discovery_issuer_mismatch"
    );

    // An ES256-only verifier refuses Keycloak's RS256 tokens at the header.
    let es = OidcVerifier::new(
        OidcConfig::new(&kc.issuer).algorithms(AlgorithmSet::parse_list("ES256").unwrap()),
    )
    .unwrap();
    assert_eq!(
        es.verify(&token).await.unwrap_err().code(),
        ErrorCode::AlgorithmNotAllowed
    );

    // An ID token, if Keycloak issues one for this grant, is not an access token.
    let response = grant(&kc, "agentcube-app", &kc.app_secret, Some("openid")).await;
    if let Some(id_token) = response["id_token"].as_str() {
        let lax_audience = OidcVerifier::new(
            OidcConfig::new(&kc.issuer).audiences(["agentcube-api", "agentcube-app"]),
        )
        .unwrap();
        let err = lax_audience.verify(id_token).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::TokenTypeMismatch {
                    location: TypeLocation::Payload,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn keycloak_behind_a_multi_issuer_verifier() {
    let Some(kc) = keycloak("keycloak_behind_a_multi_issuer_verifier") else {
        return;
    };
    let other = OidcVerifier::new(OidcConfig::new("https://other.example/realms/x")).unwrap();
    let multi = MultiIssuerVerifier::new([
        other,
        OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap(),
    ])
    .unwrap();
    let token = access_token(&kc, "agentcube-app", &kc.app_secret).await;
    let principal = TokenVerifier::verify(&multi, &token).await.unwrap();
    assert_eq!(principal.issuer(), kc.issuer);
    assert!(multi.is_ready());
    assert!(!multi.all_ready(), "the other issuer was never contacted");
}

// ---------------------------------------------------------------------------------------------
// helpers of the tests below

/// The names of a principal's realm roles.
fn realm_role_names(principal: &Principal) -> BTreeSet<String> {
    principal
        .roles()
        .realm_roles()
        .map(|r| r.name().to_owned())
        .collect()
}

fn names<S: AsRef<str>>(items: &[S]) -> BTreeSet<String> {
    items.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The realm roles the production realm file defines ("our" roles, as opposed to the
/// `offline_access` and `uma_authorization` that Keycloak adds on its own).
fn realm_file_roles() -> BTreeSet<String> {
    let file: Value = serde_json::from_str(REALM_FILE).unwrap();
    file["roles"]["realm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A client_credentials token of `client` in the realm of `issuer` whose header `kid` is `kid`,
/// asked for again (at most 50 times, 100 ms apart) until Keycloak signs with that key: a key
/// provider change applies at once in Keycloak 26, the bound is only a safety net.
async fn token_signed_by(issuer: &str, client: &str, secret: &str, kid: &str) -> String {
    for _ in 0..50 {
        let token = client_token(issuer, client, secret).await;
        if kid_of(&token) == kid {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{client}: Keycloak did not sign with {kid} within 5 s");
}

fn assert_algorithm_not_allowed(result: Result<Principal, AuthError>, alg: &str) {
    match result {
        Err(AuthError::AlgorithmNotAllowed(found)) => assert_eq!(found.as_str(), alg),
        other => panic!("expected algorithm_not_allowed for {alg}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// discovery and JWKS

#[tokio::test]
async fn discovery_and_jwks_skip_the_encryption_key() {
    let Some(kc) = keycloak("discovery_and_jwks_skip_the_encryption_key") else {
        return;
    };
    // What Keycloak publishes: one `use: sig` RS256 key and one `use: enc` RSA-OAEP key.
    let discovery = discovery(&kc.issuer).await;
    assert_eq!(discovery["issuer"], kc.issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/protocol/openid-connect/certs", kc.issuer).as_str()
    );
    let published = jwks(&kc.issuer).await;
    let (enc, sig): (Vec<&Value>, Vec<&Value>) = published.iter().partition(|k| k["use"] == "enc");
    assert!(!enc.is_empty(), "{published:?}");
    for key in &enc {
        assert_eq!(
            (&key["kty"], &key["alg"]),
            (&json!("RSA"), &json!("RSA-OAEP"))
        );
    }
    assert!(sig.iter().all(|k| k["use"] == "sig"), "{published:?}");
    assert!(sig.iter().any(|k| k["alg"] == "RS256"), "{published:?}");
    let kid = |k: &&Value| k["kid"].as_str().unwrap().to_owned();
    let enc_kids: Vec<String> = enc.iter().map(kid).collect();
    let sig_kids: BTreeSet<String> = sig.iter().map(kid).collect();

    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let store = verifier.key_store().expect("keys from the issuer");
    assert!(store.current().is_empty(), "construction does no I/O");
    assert!(!verifier.is_ready());
    assert_eq!(
        verifier.refresh_keys().await.unwrap(),
        RefreshOutcome::Updated {
            keys: sig.len(),
            skipped: enc.len()
        }
    );
    assert!(verifier.is_ready());
    let current = store.current();
    let loaded: BTreeSet<String> = current
        .keys()
        .iter()
        .map(|k| k.kid().unwrap().to_owned())
        .collect();
    assert_eq!(loaded, sig_kids);
    for kid in &enc_kids {
        assert!(!current.contains_kid(kid), "the enc key {kid} is skipped");
    }
    let stats = verifier.stats().keys;
    assert_eq!(stats.keys, sig.len());
    assert_eq!(stats.discovery_fetches, 1);
    assert_eq!(stats.fetches_ok, 1);
    assert!(stats.ready);
    assert_eq!(stats.last_error, None);

    // The enc key's kid cannot verify anything.
    let token = access_token(&kc, "agentcube-app", &kc.app_secret).await;
    assert!(sig_kids.contains(&kid_of(&token)));
    verifier.verify(&token).await.unwrap();
    for kid in &enc_kids {
        // As the kid of an RS256 token: no such signing key. The first unknown kid costs one
        // refresh (the explicit load above does not start the cooldown); later ones fall
        // within that refresh's cooldown (30 s) and cost nothing.
        let forged = with_header(&token, &json!({"alg": "RS256", "typ": "JWT", "kid": kid}));
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            AuthError::UnknownKid
        );
        // With the enc key's own algorithm: not a signature algorithm.
        let forged = with_header(
            &token,
            &json!({"alg": "RSA-OAEP", "typ": "JWT", "kid": kid}),
        );
        assert_algorithm_not_allowed(verifier.verify(&forged).await, "RSA-OAEP");
        // Every RSA signature algorithm allowed: still no key for that kid.
        let rsa =
            OidcVerifier::new(OidcConfig::new(&kc.issuer).algorithms(
                AlgorithmSet::parse_list("RS256,RS384,RS512,PS256,PS384,PS512").unwrap(),
            ))
            .unwrap();
        rsa.refresh_keys().await.unwrap();
        for alg in ["RS256", "PS256", "RS512"] {
            let forged = with_header(&token, &json!({"alg": alg, "kid": kid}));
            assert_eq!(
                rsa.verify(&forged).await.unwrap_err(),
                AuthError::UnknownKid
            );
        }
    }
    let stats = verifier.stats();
    // The first unknown kid after the explicit refresh fetches once (an explicit or background
    // fetch does not start the cooldown); every later one falls within that fetch's cooldown.
    assert_eq!(
        stats.keys.fetches_ok, 2,
        "one unknown-kid refresh, then the cooldown"
    );
    assert_eq!(stats.keys.refreshes_suppressed, enc_kids.len() as u64 - 1);
    assert_eq!(stats.rejected(ErrorCode::UnknownKid), enc_kids.len() as u64);
    assert_eq!(
        stats.rejected(ErrorCode::AlgorithmNotAllowed),
        enc_kids.len() as u64
    );
    assert_eq!(stats.accepted, 1);
}

// ---------------------------------------------------------------------------------------------
// client_credentials tokens of the production clients

#[tokio::test]
async fn client_credentials_tokens_map_to_service_account_principals() {
    let Some(kc) = keycloak("client_credentials_tokens_map_to_service_account_principals") else {
        return;
    };
    let hierarchy = RoleHierarchy::from_keycloak_realm_json(REALM_FILE).unwrap();
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let invoke = Requirement::realm_role("sandbox:invoke");
    let manage = Requirement::realm_role("sandbox:manage");
    let admin = Requirement::realm_role("admin");

    let clients = [
        ("agentcube-app", &kc.app_secret, vec!["sandbox:invoke"]),
        (
            "agentcube-admin",
            &kc.admin_secret,
            // `admin` is assigned; Keycloak adds its composites.
            vec!["admin", "sandbox:manage", "sandbox:invoke"],
        ),
    ];
    for (client, secret, roles) in clients {
        let token = access_token(&kc, client, secret).await;
        let claims = payload_of(&token);
        assert_eq!(audiences(&claims), ["agentcube-api"], "{claims:?}");
        let details = verifier.verify_with_details(&token).await.unwrap();
        assert_eq!(details.algorithm, Algorithm::RS256);
        assert_eq!(details.kid.as_deref(), Some(kid_of(&token).as_str()));
        assert!(!details.from_cache);
        let principal = &details.principal;
        assert_eq!(principal.issuer(), kc.issuer);
        assert_eq!(principal.subject(), claims["sub"].as_str().unwrap());
        assert!(principal.is_service_account(), "{client}");
        assert_eq!(principal.client_id(), Some(client));
        assert_eq!(
            principal.username(),
            Some(format!("service-account-{client}").as_str())
        );
        assert_eq!(principal.email(), None);
        assert!(principal.has_scope("profile"), "{client}");
        assert_eq!(realm_role_names(principal), names(&roles), "{client}");
        // Keycloak expanded the composites, so even a flat hierarchy grants sandbox:invoke.
        invoke.check(principal, &hierarchy).unwrap();
        invoke.check(principal, &RoleHierarchy::flat()).unwrap();
        if client == "agentcube-app" {
            for (requirement, role) in [(&manage, "sandbox:manage"), (&admin, "admin")] {
                let err = requirement.check(principal, &hierarchy).unwrap_err();
                assert_eq!(err, AuthError::InsufficientRole(Role::realm(role)));
                assert_eq!(err.code(), ErrorCode::InsufficientRole);
            }
        } else {
            manage.check(principal, &RoleHierarchy::flat()).unwrap();
            admin.check(principal, &RoleHierarchy::flat()).unwrap();
        }
        // The second time from the verified-token cache.
        assert!(
            verifier
                .verify_with_details(&token)
                .await
                .unwrap()
                .from_cache
        );
    }

    // agentcube-router has no audience mapper and its service account has no client roles, so
    // Keycloak puts no `aud` at all into its token: the verifier reports the claim as missing
    // (it checks presence before membership), whatever audiences it accepts.
    let router = access_token(&kc, "agentcube-router", &kc.router_secret).await;
    let claims = payload_of(&router);
    assert!(!claims.contains_key("aud"), "{claims:?}");
    assert_eq!(claims["azp"], "agentcube-router");
    assert_eq!(claims["typ"], "Bearer");
    assert_eq!(
        verifier.verify(&router).await.unwrap_err(),
        AuthError::MissingClaim("aud".into())
    );
    let any_audience = OidcVerifier::new(OidcConfig::new(&kc.issuer).audiences([
        "agentcube-api",
        "agentcube-router",
        "account",
    ]))
    .unwrap();
    let err = any_audience.verify(&router).await.unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("aud".into()));
    assert_eq!(err.code(), ErrorCode::MissingClaim);

    let stats = verifier.stats();
    assert_eq!(stats.accepted, 4);
    assert_eq!(stats.cache_hits, 2);
    assert_eq!(stats.rejected(ErrorCode::MissingClaim), 1);
    assert_eq!(stats.rejected_total(), 1);
}

// ---------------------------------------------------------------------------------------------
// ID and refresh tokens

#[cfg(feature = "client")]
#[tokio::test]
async fn id_and_refresh_tokens_are_not_access_tokens() {
    let Some(kc) = keycloak("id_and_refresh_tokens_are_not_access_tokens") else {
        return;
    };
    let user = kc.admin().create_user(&kc.realm).await;
    let tokens = support::login_cli(&kc.issuer, &user).await;

    // The access token of the login is one.
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let principal = verifier
        .verify(tokens.access_token().secret())
        .await
        .unwrap();
    assert!(!principal.is_service_account());
    assert_eq!(principal.username(), Some(user.0.as_str()));
    assert_eq!(principal.client_id(), Some("agentcube-cli"));
    assert_eq!(
        principal.verified_email(),
        Some(format!("{}@example.com", user.0).as_str())
    );

    // The ID token: RS256 like an access token, but for the client (`aud: agentcube-cli`,
    // the agentcube-api mapper is off for ID tokens) and with payload `typ: ID`.
    let id_token = tokens.id_token().expect("scope openid").secret();
    assert_eq!(header_of(id_token)["alg"], "RS256");
    let claims = payload_of(id_token);
    assert_eq!(claims["typ"], "ID");
    assert_eq!(audiences(&claims), ["agentcube-cli"]);
    // The default verifier checks `aud` before the payload `typ`.
    assert_eq!(
        verifier.verify(id_token).await.unwrap_err(),
        AuthError::AudienceMismatch
    );
    // With the client as an accepted audience, the payload `typ` rule is what rejects it.
    let lax = OidcConfig::new(&kc.issuer).audiences(["agentcube-api", "agentcube-cli"]);
    let lax_verifier = OidcVerifier::new(lax.clone()).unwrap();
    lax_verifier
        .verify(tokens.access_token().secret())
        .await
        .unwrap();
    match lax_verifier.verify(id_token).await.unwrap_err() {
        AuthError::TokenTypeMismatch {
            location: TypeLocation::Payload,
            found,
        } => assert_eq!(found.as_str(), "ID"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lax_verifier.stats().rejected(ErrorCode::TokenTypeMismatch),
        1
    );
    // (and only that rule: without it the ID token would pass)
    OidcVerifier::new(lax.payload_type(None))
        .unwrap()
        .verify(id_token)
        .await
        .unwrap();

    // The refresh token: HS512 with the realm's HMAC key, never allowed for a remote issuer,
    // even with every asymmetric algorithm allowed. Refused at the header: no key fetch.
    let refresh_token = tokens.refresh_token().expect("a refresh token").secret();
    assert_eq!(header_of(refresh_token)["alg"], "HS512");
    assert_eq!(payload_of(refresh_token)["typ"], "Refresh");
    for config in [
        OidcConfig::new(&kc.issuer),
        OidcConfig::new(&kc.issuer)
            .audiences(["agentcube-api", "agentcube-cli", &kc.issuer])
            .algorithms(AlgorithmSet::ALL),
    ] {
        let fresh = OidcVerifier::new(config).unwrap();
        assert_algorithm_not_allowed(fresh.verify(refresh_token).await, "HS512");
        let stats = fresh.stats().keys;
        assert_eq!((stats.discovery_fetches, stats.fetches_ok), (0, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// key rotation

#[tokio::test]
async fn key_rotation_through_the_admin_api() {
    let Some(kc) = keycloak("key_rotation_through_the_admin_api") else {
        return;
    };
    // Rotation changes the realm's keys: done in a copy of the production realm, so that the
    // other tests (running concurrently against `agentcube`) keep their keys.
    let admin = kc.admin();
    let realm = admin.create_realm_copy(&kc, "agentcube-rotation").await;
    let (active, keys) = admin.keys(&realm.name).await;
    let old_kid = active["RS256"].as_str().unwrap().to_owned();
    let old_provider = keys.iter().find(|k| k["kid"] == old_kid.as_str()).unwrap()["providerId"]
        .as_str()
        .unwrap()
        .to_owned();

    let cooldown = Duration::from_secs(1);
    let verifier = OidcVerifier::new(
        OidcConfig::new(&realm.issuer).key_store(KeyStoreConfig::new().refresh_cooldown(cooldown)),
    )
    .unwrap();
    let store = verifier.key_store().unwrap().clone();
    verifier.refresh_keys().await.unwrap();
    let fetched_at = Instant::now();
    let old_token = client_token(&realm.issuer, "agentcube-app", &realm.app_secret).await;
    assert_eq!(kid_of(&old_token), old_kid);
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(verifier.stats().keys.fetches_ok, 1);

    // A second RSA provider with a higher priority: Keycloak signs with its key from now on.
    let new_provider = admin
        .add_key_provider(
            &realm.name,
            "rsa-rotated",
            "rsa-generated",
            json!({"priority": ["200"]}),
        )
        .await;
    let (active, keys) = admin.keys(&realm.name).await;
    let new_kid = active["RS256"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let by_kid = |kid: &str| keys.iter().find(|k| k["kid"] == kid).unwrap().clone();
    assert_eq!(by_kid(&new_kid)["providerId"], new_provider.as_str());
    assert_eq!(by_kid(&old_kid)["status"], "ACTIVE");
    let new_token =
        token_signed_by(&realm.issuer, "agentcube-app", &realm.app_secret, &new_kid).await;
    assert!(!store.current().contains_kid(&new_kid));

    // The unknown kid refreshes the key set once the cooldown since the last fetch has passed
    // (usually it already has; at most 1 s to wait); concurrent requests share that one fetch.
    tokio::time::sleep_until(fetched_at + cooldown).await;
    let results = futures_util::future::join_all((0..8).map(|_| verifier.verify(&new_token))).await;
    for result in results {
        assert_eq!(result.unwrap().client_id(), Some("agentcube-app"));
    }
    let stats = verifier.stats().keys;
    assert_eq!(stats.fetches_ok, 2, "one fetch for the new kid: {stats:?}");
    assert_eq!(
        stats.refreshes_shared, 7,
        "the other requests waited for it"
    );
    assert_eq!(stats.discovery_fetches, 1, "the jwks_uri is remembered");
    assert_eq!(stats.fetches_failed, 0);
    assert!(store.current().contains_kid(&old_kid));
    assert!(store.current().contains_kid(&new_kid));
    // Both generations verify, without another fetch.
    verifier.verify(&old_token).await.unwrap();
    verifier.verify(&new_token).await.unwrap();
    assert_eq!(verifier.stats().keys.fetches_ok, 2);

    // Withdraw the old key: disable its provider. Keycloak drops it from the JWKS at once.
    let path = format!("/{}/components/{old_provider}", realm.name);
    let mut component = admin.get(&path).await;
    component["config"]["enabled"] = json!(["false"]);
    admin.put(&path, &component).await;
    let published: Vec<String> = jwks(&realm.issuer)
        .await
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!published.contains(&old_kid), "{published:?}");
    assert!(published.contains(&new_kid), "{published:?}");

    // Until the verifier refreshes, its key set still holds the old key: a known kid never
    // causes a fetch (only an unknown kid, the schedule, or an explicit refresh do).
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(verifier.stats().keys.fetches_ok, 2);
    // After the next refresh the old key is gone, and with it the cached verification of the
    // old token.
    match verifier.refresh_keys().await.unwrap() {
        RefreshOutcome::Updated { keys, skipped } => {
            assert_eq!((keys, skipped), (1, 1), "new RS256 key; RSA-OAEP skipped");
        }
        other => panic!("{other:?}"),
    }
    assert!(!store.current().contains_kid(&old_kid));
    assert_eq!(
        verifier.verify(&old_token).await.unwrap_err(),
        AuthError::UnknownKid
    );
    verifier.verify(&new_token).await.unwrap();
    let later = client_token(&realm.issuer, "agentcube-app", &realm.app_secret).await;
    assert_eq!(kid_of(&later), new_kid);
    verifier.verify(&later).await.unwrap();
    // A verifier started now never knew the old key.
    let fresh = OidcVerifier::new(OidcConfig::new(&realm.issuer)).unwrap();
    assert_eq!(
        fresh.verify(&old_token).await.unwrap_err(),
        AuthError::UnknownKid
    );
    fresh.verify(&new_token).await.unwrap();
    assert_eq!(verifier.stats().rejected(ErrorCode::UnknownKid), 1);

    admin.delete(&format!("/{}", realm.name)).await;
}

// ---------------------------------------------------------------------------------------------
// ES256, ES512 and EdDSA

#[tokio::test]
async fn es256_es512_and_eddsa_keys_verify_when_allowed() {
    let Some(kc) = keycloak("es256_es512_and_eddsa_keys_verify_when_allowed") else {
        return;
    };
    // New key providers change the realm's JWKS: done in a copy of the production realm.
    let admin = kc.admin();
    let realm = admin.create_realm_copy(&kc, "agentcube-algorithms").await;
    let es_provider = admin
        .add_key_provider(
            &realm.name,
            "ecdsa-p256",
            "ecdsa-generated",
            json!({"priority": ["100"], "ecdsaEllipticCurveKey": ["P-256"]}),
        )
        .await;
    let p521_provider = admin
        .add_key_provider(
            &realm.name,
            "ecdsa-p521",
            "ecdsa-generated",
            json!({"priority": ["100"], "ecdsaEllipticCurveKey": ["P-521"]}),
        )
        .await;
    let ed_provider = admin
        .add_key_provider(
            &realm.name,
            "eddsa-ed25519",
            "eddsa-generated",
            json!({"priority": ["100"], "eddsaEllipticCurveKey": ["Ed25519"]}),
        )
        .await;
    let (active, keys) = admin.keys(&realm.name).await;
    let kid_for = |alg: &str| active[alg].as_str().unwrap().to_owned();
    let (rs_kid, es_kid, ed_kid) = (kid_for("RS256"), kid_for("ES256"), kid_for("EdDSA"));
    let p521_kid = kid_for("ES512");
    let provider_of = |kid: &str| {
        keys.iter().find(|k| k["kid"] == kid).unwrap()["providerId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(provider_of(&es_kid), es_provider);
    assert_eq!(provider_of(&p521_kid), p521_provider);
    assert_eq!(provider_of(&ed_kid), ed_provider);

    // Dedicated clients whose access tokens are signed with those keys.
    let secret = support::random_hex(16);
    for (client, alg) in [
        ("test-es256", "ES256"),
        ("test-es512", "ES512"),
        ("test-eddsa", "EdDSA"),
    ] {
        admin
            .create_service_client(
                &realm.name,
                client,
                &secret,
                json!({"access.token.signed.response.alg": alg}),
            )
            .await;
    }
    let es_token = client_token(&realm.issuer, "test-es256", &secret).await;
    let p521_token = client_token(&realm.issuer, "test-es512", &secret).await;
    let ed_token = client_token(&realm.issuer, "test-eddsa", &secret).await;
    let rs_token = client_token(&realm.issuer, "agentcube-app", &realm.app_secret).await;
    for (token, alg, kid) in [
        (&es_token, "ES256", &es_kid),
        (&p521_token, "ES512", &p521_kid),
        (&ed_token, "EdDSA", &ed_kid),
        (&rs_token, "RS256", &rs_kid),
    ] {
        let header = header_of(token);
        assert_eq!((&header["alg"], &header["kid"]), (&json!(alg), &json!(kid)));
    }

    // ES512 signatures are the fixed 132-byte JOSE form over P-521.
    let p521_signature = p521_token.rsplit_once('.').unwrap().1;
    assert_eq!(URL_SAFE_NO_PAD.decode(p521_signature).unwrap().len(), 132);

    // Allowed: all four verify, each with its own key.
    let all = OidcVerifier::new(
        OidcConfig::new(&realm.issuer)
            .algorithms(AlgorithmSet::parse_list("RS256,ES256,ES512,EdDSA").unwrap()),
    )
    .unwrap();
    assert_eq!(
        all.refresh_keys().await.unwrap(),
        RefreshOutcome::Updated {
            keys: 4,
            skipped: 1
        },
        "RS256, ES256, ES512 and EdDSA keys; the RSA-OAEP key skipped"
    );
    for (token, alg, kid, client) in [
        (&es_token, Algorithm::ES256, &es_kid, "test-es256"),
        (&p521_token, Algorithm::ES512, &p521_kid, "test-es512"),
        (&ed_token, Algorithm::EdDSA, &ed_kid, "test-eddsa"),
        (&rs_token, Algorithm::RS256, &rs_kid, "agentcube-app"),
    ] {
        let details = all.verify_with_details(token).await.unwrap();
        assert_eq!(details.algorithm, alg);
        assert_eq!(details.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(details.principal.client_id(), Some(client));
        assert!(details.principal.is_service_account());
    }
    assert_eq!(all.stats().keys.fetches_ok, 1);

    // The default allowlist is RS256: ES256, ES512 and EdDSA are refused at the header, before
    // any key lookup (so without a fetch).
    let default = OidcVerifier::new(OidcConfig::new(&realm.issuer)).unwrap();
    assert_algorithm_not_allowed(default.verify(&es_token).await, "ES256");
    assert_algorithm_not_allowed(default.verify(&p521_token).await, "ES512");
    assert_algorithm_not_allowed(default.verify(&ed_token).await, "EdDSA");
    assert_eq!(default.stats().keys.fetches_ok, 0);
    assert_eq!(default.stats().keys.discovery_fetches, 0);
    default.verify(&rs_token).await.unwrap();

    // One of the two allowed.
    let es_only = OidcVerifier::new(
        OidcConfig::new(&realm.issuer).algorithms(AlgorithmSet::only(Algorithm::ES256)),
    )
    .unwrap();
    es_only.verify(&es_token).await.unwrap();
    assert_algorithm_not_allowed(es_only.verify(&p521_token).await, "ES512");
    assert_algorithm_not_allowed(es_only.verify(&ed_token).await, "EdDSA");
    assert_algorithm_not_allowed(es_only.verify(&rs_token).await, "RS256");
    let ed_only = OidcVerifier::new(
        OidcConfig::new(&realm.issuer).algorithms(AlgorithmSet::only(Algorithm::EdDSA)),
    )
    .unwrap();
    ed_only.verify(&ed_token).await.unwrap();
    assert_algorithm_not_allowed(ed_only.verify(&es_token).await, "ES256");
    let p521_only = OidcVerifier::new(
        OidcConfig::new(&realm.issuer).algorithms(AlgorithmSet::only(Algorithm::ES512)),
    )
    .unwrap();
    p521_only.verify(&p521_token).await.unwrap();
    assert_algorithm_not_allowed(p521_only.verify(&es_token).await, "ES256");

    // A token's algorithm must fit the key its kid names (no algorithm confusion). Each forged
    // token keeps a signature of the size its claimed algorithm has, so that it gets past
    // framing to the key lookup.
    for (token, alg, kid) in [
        (&es_token, "EdDSA", &es_kid),
        (&ed_token, "ES256", &ed_kid),
        (&rs_token, "RS256", &es_kid),
        (&rs_token, "RS256", &ed_kid),
        (&es_token, "ES256", &rs_kid),
        (&ed_token, "EdDSA", &rs_kid),
        // P-256 and P-521 keys are not interchangeable.
        (&p521_token, "ES512", &es_kid),
        (&es_token, "ES256", &p521_kid),
        (&p521_token, "ES512", &rs_kid),
    ] {
        let forged = with_header(token, &json!({"alg": alg, "typ": "JWT", "kid": kid}));
        assert_eq!(
            all.verify(&forged).await.unwrap_err(),
            AuthError::KeyAlgorithmMismatch,
            "{alg} with {kid}"
        );
    }
    // A 64-byte ECDSA signature under an RS256 header is refused at framing, before the key.
    let forged = with_header(
        &es_token,
        &json!({"alg": "RS256", "typ": "JWT", "kid": rs_kid}),
    );
    assert_eq!(
        all.verify(&forged).await.unwrap_err().code(),
        ErrorCode::Malformed
    );
    assert_eq!(all.stats().keys.fetches_ok, 1);

    admin.delete(&format!("/{}", realm.name)).await;
}

// ---------------------------------------------------------------------------------------------
// role hierarchy

#[tokio::test]
async fn role_hierarchy_of_the_realm_file_matches_keycloak_tokens() {
    let Some(kc) = keycloak("role_hierarchy_of_the_realm_file_matches_keycloak_tokens") else {
        return;
    };
    let hierarchy = RoleHierarchy::from_keycloak_realm_json(REALM_FILE).unwrap();
    let ours = realm_file_roles();
    assert_eq!(
        ours,
        names(&[
            "admin",
            "default-roles-agentcube",
            "sandbox:invoke",
            "sandbox:manage"
        ])
    );
    let file: Value = serde_json::from_str(REALM_FILE).unwrap();
    let file_roles_of = |client: &str| -> BTreeSet<String> {
        let user = file["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["serviceAccountClientId"] == client)
            .unwrap();
        user["realmRoles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let only_ours = |roles: BTreeSet<String>| -> BTreeSet<String> {
        roles.intersection(&ours).cloned().collect()
    };
    // What Keycloak does: every realm composite expands, the default role included. (The
    // library's hierarchy deliberately never expands `default-roles-*`; it is only for issuers
    // that do not expand composites themselves.)
    let keycloak_expansion =
        RoleHierarchy::from_pairs(file["roles"]["realm"].as_array().unwrap().iter().flat_map(
            |role| {
                let name = role["name"].as_str().unwrap().to_owned();
                role["composites"]["realm"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |c| (Role::realm(name.as_str()), Role::realm(c.as_str().unwrap())))
            },
        ))
        .unwrap();
    let expand = |direct: &BTreeSet<String>| -> BTreeSet<String> {
        let held: RoleSet = direct.iter().map(|r| Role::realm(r.as_str())).collect();
        keycloak_expansion
            .expand(&held)
            .realm_roles()
            .map(|r| r.name().to_owned())
            .collect()
    };
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let admin = kc.admin();

    // (identity, direct realm roles in Keycloak, access token)
    let mut cases = Vec::new();
    for (client, secret) in [
        ("agentcube-app", &kc.app_secret),
        ("agentcube-admin", &kc.admin_secret),
    ] {
        let direct: BTreeSet<String> = admin
            .service_account_direct_realm_roles(&kc.realm, client)
            .await
            .into_iter()
            .collect();
        // Keycloak holds what the file assigns.
        assert_eq!(only_ours(direct.clone()), file_roles_of(client), "{client}");
        let token = access_token(&kc, client, secret).await;
        cases.push((client.to_owned(), direct, token));
    }
    // A human user gets the realm's default role, itself a composite.
    #[cfg(feature = "client")]
    {
        let user = admin.create_user(&kc.realm).await;
        let id = admin.user_id(&kc.realm, &user.0).await;
        let direct: BTreeSet<String> = admin
            .direct_realm_roles(&kc.realm, &id)
            .await
            .into_iter()
            .collect();
        assert_eq!(
            only_ours(direct.clone()),
            names(&["default-roles-agentcube"])
        );
        let tokens = support::login_cli(&kc.issuer, &user).await;
        cases.push((user.0, direct, tokens.access_token().secret().to_owned()));
    }

    for (who, direct, token) in cases {
        let expected = only_ours(expand(&direct));
        let in_token: BTreeSet<String> = realm_roles_of(&payload_of(&token)).into_iter().collect();
        assert_eq!(only_ours(in_token), expected, "{who}: direct {direct:?}");
        let principal = verifier.verify(&token).await.unwrap();
        assert_eq!(only_ours(realm_role_names(&principal)), expected, "{who}");
        // The token's own roles (a flat hierarchy, the default) and the realm file's hierarchy
        // both grant exactly the roles Keycloak put into the token.
        let flat = RoleHierarchy::flat();
        for role in &ours {
            for h in [&flat, &hierarchy] {
                assert_eq!(
                    Requirement::realm_role(role.as_str()).is_satisfied_by(&principal, h),
                    expected.contains(role),
                    "{who}: {role}"
                );
            }
        }
    }
}
