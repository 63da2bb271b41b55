//! The public interface, exercised only through `agentcube_identity`'s exports (and the
//! auth-core types they take): the signatures a Router, a workload manager and a sandbox build on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, Jwk, KeySet, KeySource, SignError, VerificationKey};
use agentcube_auth_core::{
    AuthError, Code, ErrorCode, KeysUnavailableReason, ManualClock, Principal, Rejection, Role,
    TokenVerifier,
};
use agentcube_identity::*;

const NOW: i64 = 1_800_000_000;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn constants_and_defaults() {
    assert_eq!(IDENTITY_HEADER, "X-AgentCube-User-Identity");
    assert_eq!(IDENTITY_TOKEN_TYPE, "agentcube-identity+jwt");
    assert_eq!(SANDBOX_TOKEN_TYPE, "agentcube-sandbox+jwt");
    assert_eq!(<Identity as TokenKind>::TYPE, IDENTITY_TOKEN_TYPE);
    assert_eq!(<Sandbox as TokenKind>::TYPE, SANDBOX_TOKEN_TYPE);
    assert_eq!(DEFAULT_ISSUER, "agentcube-router");
    assert_eq!(DEFAULT_IDENTITY_AUDIENCE, "workloadmanager");
    assert_eq!(SANDBOX_AUDIENCE_PREFIX, "sandbox:");
    assert_eq!(MAX_SESSION_ID_BYTES, 256);
    assert_eq!(MAX_LIFETIME, Duration::from_secs(300));
    assert_eq!(
        MinterConfig::DEFAULT_IDENTITY_LIFETIME,
        Duration::from_secs(30)
    );
    assert_eq!(
        MinterConfig::DEFAULT_SANDBOX_LIFETIME,
        Duration::from_secs(60)
    );
    assert_eq!(
        MinterConfig::DEFAULT_REFRESH_MARGIN,
        Duration::from_secs(10)
    );
    assert_eq!(VerifierConfig::DEFAULT_LEEWAY, Duration::from_secs(5));
    assert_eq!(VerifierConfig::DEFAULT_MAX_TOKEN_BYTES, 8 * 1024);
    assert_eq!(VerifierConfig::DEFAULT_CACHE_CAPACITY, 10_000);
    const {
        assert!(MinterConfig::DEFAULT_CACHE_CAPACITY > 0 && ReplayGuard::DEFAULT_CAPACITY > 0);
    };
    assert_eq!(
        VerifierConfig::DEFAULT_ALGORITHMS
            .iter()
            .collect::<Vec<_>>(),
        vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
    );
    assert_eq!(MinterConfig::new(), MinterConfig::default());
    assert_eq!(VerifierConfig::new(), VerifierConfig::default());
    // The defaults are the wire constants: a default minter's tokens pass a default verifier
    // (see the end-to-end test below), and a verifier configured with them is the default.
    assert_eq!(
        VerifierConfig::new()
            .issuer(DEFAULT_ISSUER)
            .identity_audience(DEFAULT_IDENTITY_AUDIENCE)
            .leeway(VerifierConfig::DEFAULT_LEEWAY)
            .max_lifetime(MAX_LIFETIME),
        VerifierConfig::default()
    );
    assert_eq!(
        MinterConfig::new()
            .issuer(DEFAULT_ISSUER)
            .identity_audience(DEFAULT_IDENTITY_AUDIENCE)
            .include_roles(true),
        MinterConfig::default()
    );
}

#[test]
fn types_are_shareable_across_tasks() {
    assert_send_sync::<KeyRing>();
    assert_send_sync::<SigningKey>();
    assert_send_sync::<TokenMinter>();
    assert_send_sync::<MintedToken>();
    assert_send_sync::<IdentityVerifier<KeyRing>>();
    assert_send_sync::<IdentityVerifier<Arc<KeyRing>>>();
    assert_send_sync::<SandboxVerifier<KeySet>>();
    assert_send_sync::<InternalVerifier<KeySet, Sandbox>>();
    assert_send_sync::<ReplayGuard>();
    assert_send_sync::<VerifiedIdentity>();
    assert_send_sync::<VerifiedSandbox>();
    assert_send_sync::<SessionBinding>();
    assert_send_sync::<ConfigError>();
    assert_send_sync::<KeyError>();
    assert_send_sync::<MintError>();
}

fn assert_token_verifier<V: TokenVerifier>() {}

#[test]
fn key_minter_and_verifier_signatures() {
    let _: fn(Algorithm) -> Result<SigningKey, KeyError> = SigningKey::generate;
    let _: fn(&str) -> Result<SigningKey, KeyError> = SigningKey::from_pem;
    let _: fn(&[u8]) -> Result<SigningKey, KeyError> = SigningKey::from_pkcs8_der;
    let _: fn(&[u8]) -> Result<SigningKey, KeyError> = SigningKey::from_pkcs1_der;
    let _: fn(&[u8]) -> Result<SigningKey, KeyError> = SigningKey::from_sec1_der;
    let _: fn(&SigningKey) -> &str = SigningKey::kid;
    let _: fn(&SigningKey) -> &Jwk = SigningKey::public_jwk;
    let _: fn(&SigningKey) -> &Arc<VerificationKey> = SigningKey::verification_key;
    let _: fn(&SigningKey) -> Result<PrivateKeyPem, KeyError> = SigningKey::to_pkcs8_pem;
    let _: fn(&str) -> Result<Jwk, KeyError> = Jwk::from_public_pem;
    let _: fn(&[u8]) -> Result<Jwk, KeyError> = Jwk::from_spki_der;
    let _: fn(SigningKey) -> KeyRing = KeyRing::new;
    let _: fn() -> Result<KeyRing, KeyError> = KeyRing::generate;
    let _: fn(&str) -> Result<KeyRing, KeyError> = KeyRing::from_private_pem;
    let _: fn(&str) -> Result<KeyRing, KeyError> = KeyRing::from_public_pem;
    let _: fn(Vec<Jwk>) -> Result<KeyRing, KeyError> = KeyRing::verify_only;
    let _: fn(&KeyRing, SigningKey) -> Option<String> = KeyRing::rotate;
    let _: fn(&KeyRing, Jwk) -> Result<String, KeyError> = KeyRing::add_verification_key;
    let _: fn(&KeyRing, &str) -> Result<bool, KeyError> = KeyRing::remove;
    let _: fn(&KeyRing) -> Jwks = KeyRing::jwks;
    let _: fn(&KeyRing) -> Arc<str> = KeyRing::jwks_json;
    let _: fn(&KeyRing) -> KeySet = KeyRing::key_set;
    let _: fn(Arc<KeyRing>) -> TokenMinter = TokenMinter::new;
    let _: fn(Arc<KeyRing>, MinterConfig) -> Result<TokenMinter, ConfigError> =
        TokenMinter::with_config;
    let _: fn(&TokenMinter, &Principal) -> Result<MintedToken, MintError> =
        TokenMinter::identity_token;
    let _: fn(&TokenMinter, &Principal, &str) -> Result<MintedToken, MintError> =
        TokenMinter::sandbox_token;
    let _: fn(&TokenMinter) -> u64 = TokenMinter::cached_tokens;
    let _: fn(&str) -> String = sandbox_audience;
    let _: fn(KeySet) -> IdentityVerifier<KeySet> = IdentityVerifier::new;
    let _: fn(KeySet, VerifierConfig) -> Result<IdentityVerifier<KeySet>, ConfigError> =
        IdentityVerifier::with_config;
    let _: fn(KeySet, SessionBinding) -> Result<SandboxVerifier<KeySet>, ConfigError> =
        SandboxVerifier::new;
    let _: fn(
        KeySet,
        SessionBinding,
        VerifierConfig,
    ) -> Result<SandboxVerifier<KeySet>, ConfigError> = SandboxVerifier::with_config;
    let _: fn(&IdentityVerifier<KeySet>) -> &KeySet = IdentityVerifier::keys;
    let _: fn(&SandboxVerifier<KeySet>) -> &VerifierConfig = SandboxVerifier::config;
    let _: fn(&IdentityVerifier<KeySet>) -> u64 = IdentityVerifier::cached_tokens;
    let _: fn(VerifierConfig, u64) -> VerifierConfig = VerifierConfig::cache_capacity;
    let _: fn(&VerifiedIdentity) -> bool = VerifiedIdentity::from_cache;
    let _: fn(&VerifiedIdentity) -> Principal = VerifiedIdentity::to_principal;
    let _: fn(&VerifiedSandbox) -> Principal = VerifiedSandbox::to_principal;
    let _: fn(&Principal) -> Option<&str> = sandbox_session;
    assert_token_verifier::<IdentityVerifier<Arc<KeyRing>>>();
    assert_token_verifier::<SandboxVerifier<KeySet>>();
    assert_eq!(
        SessionBinding::session("s1"),
        SessionBinding::Session("s1".to_owned())
    );
}

/// A key source that starts empty and gets keys later, like a remote JWKS store whose issuer
/// was down at start-up.
struct LateKeys {
    ready: AtomicBool,
    keys: KeySet,
}

impl KeySource for LateKeys {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        std::future::ready(if self.ready.load(Ordering::SeqCst) {
            self.keys.find(kid, alg).cloned()
        } else {
            Err(AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded))
        })
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn router_workload_manager_and_sandbox_end_to_end() {
    let clock = ManualClock::new(NOW);
    // Router.
    let minter = TokenMinter::new(Arc::new(KeyRing::generate().unwrap())).with_clock(clock.clone());
    let caller = Principal::builder("https://kc/realms/agentcube", "alice-id")
        .roles([Role::realm("admin")])
        .build();
    let identity = minter.identity_token(&caller).unwrap();
    let sandbox = minter.sandbox_token(&caller, "sess-1").unwrap();
    let jwks = minter.key_ring().jwks_json();

    // Workload manager: keys from the Router's JWKS through a late-loading source.
    let (set, _) = KeySet::from_jwks(jwks.as_bytes(), 32).unwrap();
    let late = Arc::new(LateKeys {
        ready: AtomicBool::new(false),
        keys: set,
    });
    let wm = IdentityVerifier::new(late.clone()).with_clock(clock.clone());
    assert!(!wm.is_ready());
    let e = wm.verify(identity.as_str()).await.unwrap_err();
    assert_eq!(
        (e.code(), e.http_status().as_u16()),
        (ErrorCode::KeysUnavailable, 503)
    );
    late.ready.store(true, Ordering::SeqCst);
    assert!(wm.is_ready());
    let who = wm.verify(identity.as_str()).await.unwrap();
    assert_eq!(who.subject(), "alice-id");
    assert!(who.roles().contains_realm("admin"));
    assert_eq!(who.to_principal().issuer(), "https://kc/realms/agentcube");

    // Sandbox: keys from the JWKS document as a verify-only ring.
    let doc: Jwks = serde_json::from_str(&jwks).unwrap();
    let keys = Arc::new(KeyRing::verify_only(doc.keys).unwrap());
    let sb = SandboxVerifier::new(keys.clone(), SessionBinding::session("sess-1"))
        .unwrap()
        .with_clock(clock.clone());
    let got = sb.verify(sandbox.as_str()).await.unwrap();
    assert_eq!((got.session_id(), got.user_sub()), ("sess-1", "alice-id"));
    let other = SandboxVerifier::new(keys, SessionBinding::session("sess-2"))
        .unwrap()
        .with_clock(clock);
    assert_eq!(
        other.verify(sandbox.as_str()).await.unwrap_err().code(),
        ErrorCode::AudienceMismatch
    );
}

#[test]
fn error_types_are_descriptive_and_lowercase() {
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(KeyError::ActiveKey),
        Box::new(MintError::NoSigningKey),
        Box::new(MintError::Signing(SignError::Crypto)),
        Box::new(ConfigError::EmptyIssuer),
        Box::new(ConfigError::InvalidSessionId),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(text.chars().next().unwrap().is_lowercase(), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
    let mint = MintError::EmptySubject;
    assert_eq!(
        (mint.code(), mint.status()),
        (
            Code::new("empty_subject"),
            http::StatusCode::INTERNAL_SERVER_ERROR
        )
    );
    assert!(!mint.public_message().contains("subject"));
}
