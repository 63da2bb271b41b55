//! The mock issuer: discovery + JWKS on wiremock.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_auth_core::{Clock, SystemClock};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::key::TestKey;
use super::token::TokenBuilder;
use crate::{KeyStoreConfig, OidcConfig, OidcVerifier};

/// An OIDC issuer on a local wiremock server: a Keycloak realm by default, or any other issuer
/// shape ([`IssuerShape`]: a root issuer with or without a trailing slash as Auth0 and Google
/// use, an Okta-style path).
///
/// * [`issuer`](Self::issuer) is e.g. `http://127.0.0.1:<port>/realms/<realm>`;
/// * discovery and JWKS are served from the current state, so [`rotate`](Self::rotate),
///   [`retire`](Self::retire) and the failure switches take effect on the next request;
/// * [`jwks_fetches`](Self::jwks_fetches) and [`discovery_fetches`](Self::discovery_fetches)
///   count requests;
/// * [`token`](Self::token) mints a Keycloak-shaped access token signed by the current key,
///   [`generic_token`](Self::generic_token) one with only the registered claims.
///
/// Other mocks (a token endpoint, say) can be mounted on [`server`](Self::server).
pub struct MockIssuer {
    server: MockServer,
    issuer: String,
    realm: String,
    jwks_path: String,
    state: Arc<State>,
}

/// Where an issuer lives under its server, and so what its `iss`, discovery and JWKS URLs are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerShape {
    /// A Keycloak realm: `iss` = `{server}/realms/<realm>`, JWKS at
    /// `{iss}/protocol/openid-connect/certs`.
    KeycloakRealm(String),
    /// The server's root: `iss` = `{server}/` with `trailing_slash` (as Auth0 writes it) or
    /// `{server}` without; JWKS at `{server}/.well-known/jwks.json`.
    Root {
        /// Whether `iss` ends with `/`.
        trailing_slash: bool,
    },
    /// A path under the server, Okta style (`/oauth2/default`): `iss` = `{server}<path>`,
    /// JWKS at `{iss}/v1/keys`.
    Path(String),
}

impl IssuerShape {
    /// `(iss, path prefix of the well-known documents, JWKS path)` for a server at `base`.
    fn layout(&self, base: &str) -> (String, String, String) {
        match self {
            Self::KeycloakRealm(realm) => {
                let prefix = format!("/realms/{realm}");
                (
                    format!("{base}{prefix}"),
                    prefix.clone(),
                    format!("{prefix}/protocol/openid-connect/certs"),
                )
            }
            Self::Root { trailing_slash } => (
                format!("{base}{}", if *trailing_slash { "/" } else { "" }),
                String::new(),
                "/.well-known/jwks.json".to_owned(),
            ),
            Self::Path(path) => {
                let prefix = format!("/{}", path.trim_matches('/'));
                (
                    format!("{base}{prefix}"),
                    prefix.clone(),
                    format!("{prefix}/v1/keys"),
                )
            }
        }
    }
}

struct State {
    inner: Mutex<Inner>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

struct Inner {
    published: Vec<Arc<TestKey>>,
    raw_jwks: Vec<Value>,
    signing: Arc<TestKey>,
    jwks_override: Option<ResponseTemplate>,
    discovery_override: Option<ResponseTemplate>,
    jwks_status: Option<u16>,
    discovery_status: Option<u16>,
    cache_control: Option<String>,
    etag: bool,
    clock: Arc<dyn Clock>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Configures a [`MockIssuer`] before it starts.
#[must_use]
pub struct MockIssuerBuilder {
    shape: IssuerShape,
    keys: Vec<TestKey>,
    clock: Arc<dyn Clock>,
}

impl MockIssuerBuilder {
    /// A Keycloak realm of this name (the default is realm `agentcube`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.shape = IssuerShape::KeycloakRealm(realm.into());
        self
    }

    /// Another issuer shape (see [`IssuerShape`]).
    pub fn shape(mut self, shape: IssuerShape) -> Self {
        self.shape = shape;
        self
    }

    /// Publishes `key`; the first key added signs tokens. Without any, one RS256 key is
    /// generated.
    pub fn key(mut self, key: TestKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Publishes a freshly generated key for `alg` (see [`key`](Self::key)).
    pub fn algorithm(self, alg: Algorithm) -> Self {
        self.key(TestKey::generate(alg))
    }

    /// The clock minted tokens take `iat`/`exp` from, also given to [`MockIssuer::config`].
    /// Default the system clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Starts the server.
    pub async fn start(self) -> MockIssuer {
        let mut keys: Vec<Arc<TestKey>> = self.keys.into_iter().map(Arc::new).collect();
        let signing = match keys.first() {
            Some(first) => Arc::clone(first),
            None => {
                let key = Arc::new(TestKey::generate(Algorithm::RS256));
                keys.push(Arc::clone(&key));
                key
            }
        };
        // A dedicated server (not wiremock's pool): tests that count requests must not share.
        let server = MockServer::builder().start().await;
        let (issuer, prefix, jwks_path) = self.shape.layout(&server.uri());
        let realm = match &self.shape {
            IssuerShape::KeycloakRealm(realm) => realm.clone(),
            _ => String::new(),
        };
        let state = Arc::new(State {
            inner: Mutex::new(Inner {
                published: keys,
                raw_jwks: Vec::new(),
                signing,
                jwks_override: None,
                discovery_override: None,
                jwks_status: None,
                discovery_status: None,
                cache_control: None,
                etag: false,
                clock: self.clock,
            }),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/.well-known/openid-configuration")))
            .respond_with(DiscoveryResponder {
                state: Arc::clone(&state),
                issuer: issuer.clone(),
                endpoints: format!("{}{prefix}", server.uri()),
                jwks_uri: format!("{}{jwks_path}", server.uri()),
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(jwks_path.as_str()))
            .respond_with(JwksResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        MockIssuer {
            server,
            issuer,
            realm,
            jwks_path,
            state,
        }
    }
}

impl MockIssuer {
    /// A mock issuer for Keycloak realm `agentcube` with one RS256 key.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder for another realm or issuer shape, other keys or a manual clock.
    pub fn builder() -> MockIssuerBuilder {
        MockIssuerBuilder {
            shape: IssuerShape::KeycloakRealm("agentcube".into()),
            keys: Vec::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The issuer (`iss`), e.g. `http://127.0.0.1:<port>/realms/<realm>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The Keycloak realm name (empty for the other shapes).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The discovery document URL (`{iss}/.well-known/openid-configuration`, without a
    /// doubled `/`).
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }

    /// The JWKS URL (Keycloak's `.../protocol/openid-connect/certs` for a realm).
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.server.uri(), self.jwks_path)
    }

    /// The token endpoint URL named in the discovery document (not served: mount a mock on
    /// [`server`](Self::server) to use it).
    pub fn token_url(&self) -> String {
        format!("{}{}", self.endpoint_base(), TOKEN_PATH)
    }

    fn endpoint_base(&self) -> String {
        self.issuer.trim_end_matches('/').to_owned()
    }

    /// The wiremock server, to mount more endpoints.
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// The clock tokens are minted with.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.state.lock().clock)
    }

    /// A verifier configuration for this issuer with the library's production defaults
    /// (audience `agentcube-api`, Keycloak `typ` rule, 30 s leeway, …), except:
    ///
    /// * the algorithm allowlist is exactly the algorithms of the keys published now (one RS256
    ///   key by default, so RS256 only, the production default) — widen it with
    ///   [`OidcConfig::algorithms`] for tests of other algorithms;
    /// * the mock's clock;
    /// * no key-store timeouts, so tests can run on paused tokio time (the mock always answers).
    pub fn config(&self) -> OidcConfig {
        let algorithms: AlgorithmSet = self
            .published_keys()
            .iter()
            .map(|key| key.algorithm())
            .collect();
        OidcConfig::new(self.issuer.clone())
            .algorithms(algorithms)
            .clock(self.clock())
            .key_store(KeyStoreConfig::new().timeouts(None, None))
    }

    /// A verifier built from [`config`](Self::config).
    ///
    /// # Panics
    /// Never: the configuration is valid.
    #[allow(clippy::expect_used)]
    pub fn verifier(&self) -> OidcVerifier {
        OidcVerifier::new(self.config()).expect("mock issuer configuration is valid")
    }

    /// A Keycloak-shaped access token (see [`TokenBuilder::keycloak`]) from this issuer, issued
    /// now by the mock's clock and signed by the current signing key.
    pub fn token(&self) -> TokenBuilder {
        let inner = self.state.lock();
        TokenBuilder::keycloak(
            &self.issuer,
            Arc::clone(&inner.signing),
            inner.clock.now_unix(),
        )
    }

    /// An access token with only the registered claims (see [`TokenBuilder::generic`]) for
    /// `subject` and `audience`, issued now by the mock's clock and signed by the current key:
    /// the starting point for issuers other than Keycloak.
    pub fn generic_token(&self, subject: &str, audience: &str) -> TokenBuilder {
        let inner = self.state.lock();
        TokenBuilder::generic(
            &self.issuer,
            subject,
            audience,
            Arc::clone(&inner.signing),
            inner.clock.now_unix(),
        )
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> Arc<TestKey> {
        Arc::clone(&self.state.lock().signing)
    }

    /// The keys in the JWKS.
    pub fn published_keys(&self) -> Vec<Arc<TestKey>> {
        self.state.lock().published.clone()
    }

    /// Adds `key` to the JWKS without signing with it.
    pub fn publish(&self, key: TestKey) -> Arc<TestKey> {
        let key = Arc::new(key);
        self.state.lock().published.push(Arc::clone(&key));
        key
    }

    /// Adds a raw JWK object to the JWKS (an `enc` key, a weak key, junk).
    pub fn publish_raw(&self, jwk: Value) {
        self.state.lock().raw_jwks.push(jwk);
    }

    /// A rotation as Keycloak does it: a new key of the current algorithm is published and signs
    /// from now on; the old key stays published until [`retire`](Self::retire)d.
    pub fn rotate(&self) -> Arc<TestKey> {
        let alg = self.state.lock().signing.algorithm();
        self.rotate_to(TestKey::generate(alg))
    }

    /// Publishes `key` and signs with it from now on.
    pub fn rotate_to(&self, key: TestKey) -> Arc<TestKey> {
        let key = Arc::new(key);
        let mut inner = self.state.lock();
        inner.published.push(Arc::clone(&key));
        inner.signing = Arc::clone(&key);
        key
    }

    /// Removes the key with `kid` from the JWKS (it may still sign, for tests of withdrawn
    /// keys). Returns whether it was published.
    pub fn retire(&self, kid: &str) -> bool {
        let mut inner = self.state.lock();
        let before = inner.published.len();
        inner.published.retain(|k| k.kid() != kid);
        before != inner.published.len()
    }

    /// Answers every JWKS request with `response` instead (`None` restores the real JWKS).
    pub fn set_jwks_response(&self, response: Option<ResponseTemplate>) {
        self.state.lock().jwks_override = response;
    }

    /// Answers every discovery request with `response` instead (`None` restores the real one).
    pub fn set_discovery_response(&self, response: Option<ResponseTemplate>) {
        self.state.lock().discovery_override = response;
    }

    /// Answers JWKS requests with this HTTP status and an empty body (`None`: normal service).
    pub fn set_jwks_status(&self, status: Option<u16>) {
        self.state.lock().jwks_status = status;
    }

    /// Answers discovery requests with this HTTP status (`None`: normal service).
    pub fn set_discovery_status(&self, status: Option<u16>) {
        self.state.lock().discovery_status = status;
    }

    /// Makes both endpoints answer 503 (`true`) or work again (`false`): an IdP outage.
    pub fn fail(&self, failing: bool) {
        let status = failing.then_some(503);
        let mut inner = self.state.lock();
        inner.jwks_status = status;
        inner.discovery_status = status;
    }

    /// Sends this `Cache-Control` with the JWKS (`None`: no header, like Keycloak).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().cache_control = value.map(str::to_owned);
    }

    /// Sends an `ETag` with the JWKS and answers a matching `If-None-Match` with 304.
    pub fn set_etag(&self, enabled: bool) {
        self.state.lock().etag = enabled;
    }

    /// JWKS requests received.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Discovery requests received.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Sets both counters back to zero.
    pub fn reset_counters(&self) {
        self.state.jwks_fetches.store(0, Ordering::SeqCst);
        self.state.discovery_fetches.store(0, Ordering::SeqCst);
    }

    /// The current JWKS document.
    pub fn jwks(&self) -> Value {
        jwks_document(&self.state.lock())
    }
}

impl fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockIssuer")
            .field("issuer", &self.issuer)
            .field("jwks_fetches", &self.jwks_fetches())
            .finish_non_exhaustive()
    }
}

fn jwks_document(inner: &Inner) -> Value {
    let keys: Vec<Value> = inner
        .published
        .iter()
        .map(|k| k.jwk_json())
        .chain(inner.raw_jwks.iter().cloned())
        .collect();
    json!({ "keys": keys })
}

/// The token endpoint under the issuer, named in the discovery document.
const TOKEN_PATH: &str = "/protocol/openid-connect/token";

struct DiscoveryResponder {
    state: Arc<State>,
    issuer: String,
    /// Where the other endpoints live (the issuer without a trailing `/`).
    endpoints: String,
    jwks_uri: String,
}

impl Respond for DiscoveryResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
        let inner = self.state.lock();
        if let Some(status) = inner.discovery_status {
            return ResponseTemplate::new(status);
        }
        if let Some(response) = &inner.discovery_override {
            return response.clone();
        }
        let i = &self.endpoints;
        ResponseTemplate::new(200).set_body_json(json!({
            "issuer": self.issuer,
            "authorization_endpoint": format!("{i}/protocol/openid-connect/auth"),
            "token_endpoint": format!("{i}{TOKEN_PATH}"),
            "introspection_endpoint": format!("{i}/protocol/openid-connect/token/introspect"),
            "userinfo_endpoint": format!("{i}/protocol/openid-connect/userinfo"),
            "end_session_endpoint": format!("{i}/protocol/openid-connect/logout"),
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "scopes_supported": ["openid", "profile", "email"]
        }))
    }
}

struct JwksResponder {
    state: Arc<State>,
}

impl Respond for JwksResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        let inner = self.state.lock();
        if let Some(status) = inner.jwks_status {
            return ResponseTemplate::new(status);
        }
        if let Some(response) = &inner.jwks_override {
            return response.clone();
        }
        let body = jwks_document(&inner).to_string();
        let etag = etag_of(body.as_bytes());
        let mut response = if inner.etag
            && request
                .headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                == Some(etag.as_str())
        {
            ResponseTemplate::new(304)
        } else {
            ResponseTemplate::new(200).set_body_raw(body, "application/json")
        };
        if inner.etag {
            response = response.insert_header("etag", etag.as_str());
        }
        if let Some(cc) = &inner.cache_control {
            response = response.insert_header("cache-control", cc.as_str());
        }
        response
    }
}

/// A strong `ETag` of `body`: the first 8 bytes of its SHA-256 in hex, quoted.
fn etag_of(body: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let mut etag = digest
        .as_ref()
        .iter()
        .take(8)
        .fold(String::from("\""), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    etag.push('"');
    etag
}
