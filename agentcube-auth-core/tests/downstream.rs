//! A downstream service, through the public API only: an Auth0-style issuer (roles under
//! `https://example.com/roles`, a `permissions` array, the tenant in `org_id`), a claim mapper
//! of the service's own with a typed tenant, `/me` and an admin route that needs a scope.
//!
//! Tokens are real: signed with `jose::SigningKey` and verified by a small verifier assembled
//! from the crate's jose pieces against a static key set (a service would use an OIDC verifier
//! with the same mapper). Each test is named after the finding it covers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentcube_auth_core::jose::{
    self, Algorithm, AlgorithmSet, JwsPolicy, KeySet, KeySource, SigningKey, TimeRules,
    UnverifiedJws, VerificationKey,
};
use agentcube_auth_core::{
    AuthError, ClaimMapper, ClaimPathMapper, Claims, Clock, Code, ErrorCode, KeycloakClaimMapper,
    Principal, PrincipalBuilder, Rejection, Requirement, Role, RoleHierarchy, ServiceError,
    StandardClaims, SystemClock, TokenVerifier,
};
use http::StatusCode;
use serde_json::{Value, json};

// ---- the service ----

const ISSUER: &str = "https://acme-tenant.example.com/";
const AUDIENCE: &str = "https://reports.example.com";

/// The service's configuration: claim names are data, not literals.
struct Config {
    roles_claim: String,
    permissions_claim: String,
    tenant_claim: String,
    suspended: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            roles_claim: "https://example.com/roles".into(),
            permissions_claim: "permissions".into(),
            tenant_claim: "org_id".into(),
            suspended: vec!["org_suspended".into()],
        }
    }
}

/// The service's own attribute of a principal.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tenant(String);

/// The service's own rejection code.
const TENANT_SUSPENDED: Code = Code::new("tenant_suspended");

/// The service's mapper: a mapper of its own, built on the standard-claims step.
struct AcmeMapper {
    config: Config,
}

impl ClaimMapper for AcmeMapper {
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        let c = &self.config;
        let tenant = claims
            .string(&c.tenant_claim)?
            .ok_or_else(|| AuthError::MissingClaim(Cow::Owned(c.tenant_claim.clone())))?;
        if c.suspended.iter().any(|s| s == tenant) {
            return Err(ServiceError::new(
                StatusCode::FORBIDDEN,
                TENANT_SUSPENDED,
                "tenant is suspended",
            )
            .into());
        }
        // Client-credentials tokens say so in `gty`; Auth0 sends no `client_id`.
        let machine = claims.string("gty")? == Some("client-credentials");
        Ok(StandardClaims::read(claims)?
            .roles(claims.strings_at(&c.roles_claim).map(Role::new))
            .permissions(claims.strings_at(&c.permissions_claim))
            .service_account(machine)
            .extension(Tenant(tenant.to_owned())))
    }
}

/// A verifier assembled from the jose pieces: framing and header rules, key, signature,
/// `iss`, `aud`, times; then the mapper.
struct StaticKeyVerifier<M> {
    keys: KeySet,
    policy: JwsPolicy,
    mapper: M,
    calls: AtomicUsize,
}

impl<M: ClaimMapper> StaticKeyVerifier<M> {
    fn new(signer: &SigningKey, mapper: M) -> Self {
        let key = VerificationKey::from_jwk(signer.public_jwk()).unwrap();
        Self {
            keys: KeySet::new([key]),
            policy: JwsPolicy::new(AlgorithmSet::only(signer.algorithm())),
            mapper,
            calls: AtomicUsize::new(0),
        }
    }
}

impl<M: ClaimMapper> TokenVerifier for StaticKeyVerifier<M> {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let jws = UnverifiedJws::parse(token, &self.policy)?;
        let key = self
            .keys
            .key_for(jws.header().kid.as_deref(), jws.header().alg)
            .await?;
        let (_header, claims) = jws.verify(&key)?;
        jose::check_issuer(&claims, ISSUER)?;
        jose::check_audience(&claims, &[AUDIENCE])?;
        jose::check_times(&claims, SystemClock.now_unix(), &TimeRules::default())?;
        self.mapper.map(claims)
    }
}

struct Issuer {
    key: SigningKey,
}

impl Issuer {
    fn new() -> Self {
        Self {
            key: SigningKey::generate(Algorithm::EdDSA).unwrap(),
        }
    }

    /// An Auth0-style access token for `sub` in `org`, with `extra` claims merged in.
    fn token(&self, sub: &str, org: &str, extra: &Value) -> String {
        let now = SystemClock.now_unix();
        let mut claims = json!({
            "iss": ISSUER, "sub": sub, "aud": [AUDIENCE, "https://acme.example.com/userinfo"],
            "iat": now, "exp": now + 300, "azp": "spa-client", "scope": "openid profile",
            "org_id": org,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.sign_claims(Some("at+jwt"), &claims).unwrap()
    }
}

fn mapper() -> AcmeMapper {
    AcmeMapper {
        config: Config::default(),
    }
}

fn claims(v: Value) -> Claims {
    Claims::try_from(v).unwrap()
}

// ---- finding 1: a principal carries a typed attribute ----

#[tokio::test]
async fn finding_1_the_tenant_is_a_typed_attribute_of_the_principal() {
    let issuer = Issuer::new();
    let verifier = StaticKeyVerifier::new(&issuer.key, mapper());
    let p = verifier
        .verify(&issuer.token("auth0|alice", "org_acme", &json!({})))
        .await
        .unwrap();
    assert_eq!(p.extension::<Tenant>(), Some(&Tenant("org_acme".into())));
    // Clones share it; other types are absent; Debug does not show it.
    let shared = p.clone();
    drop(verifier);
    assert_eq!(
        shared.extension::<Tenant>().map(|t| t.0.as_str()),
        Some("org_acme")
    );
    assert_eq!(p.extension::<String>(), None);
    assert!(!format!("{p:?}").contains("org_acme"));
}

// ---- finding 2: mappers compose on one standard-claims step ----

#[test]
fn finding_2_a_custom_mapper_gets_the_standard_rules_from_the_shared_step() {
    let m = mapper();
    let base = json!({
        "iss": ISSUER, "sub": "auth0|alice", "org_id": "org_acme", "azp": "spa-client",
        "scope": "openid reports:read", "email": "alice@example.com", "email_verified": true,
        "https://example.com/roles": ["editor"], "permissions": ["reports:read"],
    });
    let p = m.map(claims(base.clone())).unwrap();
    assert_eq!(p.issuer(), ISSUER);
    assert_eq!(p.client_id(), Some("spa-client"));
    assert_eq!(p.verified_email(), Some("alice@example.com"));
    assert!(p.has_scope("reports:read") && p.has_permission("reports:read"));
    assert!(p.has_role("editor") && !p.is_service_account());

    // The same rules refuse the same tokens, whichever mapper runs them.
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        claims(c)
    };
    let keycloak = KeycloakClaimMapper::new();
    let path = ClaimPathMapper::new("https://example.com/roles");
    for (bad, code) in [
        (with("sub", json!("")), ErrorCode::MissingClaim),
        (with("iss", json!(7)), ErrorCode::InvalidClaim),
        (with("azp", json!(["x"])), ErrorCode::InvalidClaim),
        (with("email", json!(false)), ErrorCode::InvalidClaim),
        (with("scope", json!(["a"])), ErrorCode::InvalidClaim),
    ] {
        assert_eq!(m.map(bad.clone()).unwrap_err().code(), code);
        assert_eq!(keycloak.map(bad.clone()).unwrap_err().code(), code);
        assert_eq!(path.map(bad.clone()).unwrap_err().code(), code);
        assert_eq!(StandardClaims.map(bad).unwrap_err().code(), code);
    }
    // An unverified email is kept, never as verified.
    let p = m.map(with("email_verified", json!("true"))).unwrap();
    assert_eq!(p.verified_email(), None);
}

#[test]
fn finding_2_the_provided_mappers_can_be_extended() {
    let tenant = |claims: &Claims, b: PrincipalBuilder| -> Result<PrincipalBuilder, AuthError> {
        Ok(match claims.string("org_id")? {
            Some(org) => b.extension(Tenant(org.to_owned())),
            None => b,
        })
    };
    let path = ClaimPathMapper::new("https://example.com/roles")
        .with_permissions("permissions")
        .and_then(tenant);
    let p = path
        .map(claims(json!({
            "iss": ISSUER, "sub": "s", "org_id": "org_acme",
            "https://example.com/roles": ["admin"], "permissions": ["reports:write"],
        })))
        .unwrap();
    assert!(p.has_role("admin") && p.has_permission("reports:write"));
    assert_eq!(p.extension::<Tenant>(), Some(&Tenant("org_acme".into())));
    // The raw claims are still attached for anything else.
    assert_eq!(p.claims().get("org_id"), Some(&json!("org_acme")));

    let keycloak = KeycloakClaimMapper::new()
        .and_then(tenant)
        .and_then(|_, b| Ok(b.add_roles([Role::new("member")])));
    let p = keycloak
        .map(claims(json!({
            "iss": ISSUER, "sub": "s", "org_id": "org_acme",
            "realm_access": {"roles": ["admin"]},
        })))
        .unwrap();
    assert!(p.has_role("admin") && p.has_role("member"));
    assert_eq!(p.extension::<Tenant>(), Some(&Tenant("org_acme".into())));
}

// ---- finding 3: claim names from configuration ----

#[test]
fn finding_3_claim_names_from_configuration_keep_the_wrong_type_is_an_error_rule() {
    let configured: String = Config::default().tenant_claim;
    let c = claims(json!({"org_id": "org_acme", "org_size": "12", "https://x/n": 3}));
    assert_eq!(c.string(&configured).unwrap(), Some("org_acme"));
    let name = String::from("https://x/n");
    assert_eq!(
        c.string(&name).unwrap_err(),
        AuthError::InvalidClaim("https://x/n".into())
    );
    assert_eq!(
        c.numeric_date(&String::from("org_size"))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidClaim
    );
    assert_eq!(c.strings_at(&name).count(), 0);

    // The mapper's tenant claim is configuration too: a wrongly typed tenant is refused.
    let err = mapper()
        .map(claims(json!({"iss": ISSUER, "sub": "s", "org_id": 42})))
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidClaim("org_id".into()));
    let err = mapper()
        .map(claims(json!({"iss": ISSUER, "sub": "s"})))
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("org_id".into()));
}

// ---- finding 4: scope and permission requirements, the service's own rejections ----

#[test]
fn finding_4_scope_and_permission_requirements_combine_with_roles() {
    let flat = RoleHierarchy::flat();
    let p = mapper()
        .map(claims(json!({
            "iss": ISSUER, "sub": "s", "org_id": "org_acme", "scope": "openid reports:read",
            "permissions": ["reports:read", "reports:write"], "https://example.com/roles": ["editor"],
        })))
        .unwrap();
    let write = Requirement::all_of([
        Requirement::role("editor"),
        Requirement::permission("reports:write"),
    ]);
    assert!(write.check(&p, &flat).is_ok());

    let admin = Requirement::any_of([
        Requirement::scope("admin:write"),
        Requirement::role("admin"),
    ]);
    let err = admin.check(&p, &flat).unwrap_err();
    assert_eq!(err, AuthError::InsufficientScope("admin:write".into()));
    assert_eq!(err.code(), ErrorCode::InsufficientScope);
    assert_eq!(err.http_status(), StatusCode::FORBIDDEN);
    assert_eq!(
        err.challenge().as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="admin:write""#)
    );
    assert_eq!(
        err.public_message(),
        "insufficient permissions: missing scope admin:write"
    );

    let err = Requirement::permission("reports:delete")
        .check(&p, &flat)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InsufficientPermission);
    assert_eq!(err.http_status(), StatusCode::FORBIDDEN);
    assert_eq!(
        err.challenge().as_deref(),
        Some(r#"Bearer error="insufficient_scope""#)
    );
}

#[test]
fn finding_4_a_mapper_refuses_with_the_services_own_code_and_status() {
    let err = mapper()
        .map(claims(
            json!({"iss": ISSUER, "sub": "s", "org_id": "org_suspended"}),
        ))
        .unwrap_err();
    // What the client receives: the service's code, status and message.
    assert_eq!(Rejection::code(&err), TENANT_SUSPENDED);
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert_eq!(err.public_message(), "tenant is suspended");
    assert_eq!(err.challenge(), None);
    // The library's category, for code that matches on ErrorCode.
    assert_eq!(err.code(), ErrorCode::Custom);
    assert!(matches!(&err, AuthError::Custom(e) if e.code() == "tenant_suspended"));

    // A 401 of the service's own keeps its status and challenge.
    let own = AuthError::from(
        ServiceError::new(
            StatusCode::UNAUTHORIZED,
            Code::new("session_revoked"),
            "session revoked",
        )
        .with_challenge(r#"Bearer error="invalid_token""#),
    );
    assert_eq!(own.http_status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        own.challenge().as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
}

// ---- finding 5: neutral names ----

#[test]
fn finding_5_the_generic_api_has_neutral_names_beside_the_keycloak_ones() {
    assert_eq!(Role::new("admin"), Role::realm("admin"));
    assert_eq!(Role::from("admin"), Role::new("admin"));
    assert_eq!(Requirement::role("admin"), Requirement::realm_role("admin"));
    assert_eq!(
        Requirement::role(Role::client("api", "write")),
        Requirement::Role(Role::client("api", "write"))
    );
    let p = Principal::builder(ISSUER, "s")
        .roles([Role::new("admin")])
        .build();
    assert!(p.has_role("admin") && p.roles().contains_name("admin"));
    assert!(
        Requirement::role("admin")
            .check(&p, &RoleHierarchy::flat())
            .is_ok()
    );
}

// ---- findings 6 and 8 and the service end to end (features `axum` and `serde`) ----

#[cfg(all(feature = "axum", feature = "serde"))]
mod service {
    use std::sync::Arc;

    use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal, RequireLayer};
    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    type Verifier = StaticKeyVerifier<AcmeMapper>;

    async fn me(AuthenticatedPrincipal(p): AuthenticatedPrincipal) -> Json<Value> {
        let tenant = p.extension::<Tenant>().map(|t| t.0.clone());
        Json(json!({ "principal": p, "tenant": tenant }))
    }

    async fn export(AuthenticatedPrincipal(p): AuthenticatedPrincipal) -> String {
        let tenant = p.extension::<Tenant>().map_or("", |t| t.0.as_str());
        format!("exported reports of {tenant}")
    }

    /// `/me` for every authenticated caller; `/admin/export` also needs the `admin:write`
    /// scope. One AuthLayer verifies each request once; the admin route adds a requirement.
    fn app(verifier: Arc<Verifier>) -> Router {
        let admin = Router::new()
            .route("/admin/export", post(export))
            .route_layer(RequireLayer::new(Requirement::scope("admin:write")));
        Router::new()
            .route("/me", get(me))
            .merge(admin)
            .layer(AuthLayer::from_arc(verifier))
    }

    struct Answer {
        status: StatusCode,
        challenge: Option<String>,
        body: Value,
        text: String,
    }

    async fn send(app: Router, method: &str, uri: &str, token: Option<&str>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let challenge = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            challenge,
            body,
            text,
        }
    }

    fn setup() -> (Issuer, Arc<Verifier>) {
        let issuer = Issuer::new();
        let verifier = Arc::new(StaticKeyVerifier::new(&issuer.key, mapper()));
        (issuer, verifier)
    }

    #[tokio::test]
    async fn finding_1_and_8_me_shows_the_principal_and_its_tenant() {
        let (issuer, verifier) = setup();
        let token = issuer.token(
            "auth0|alice",
            "org_acme",
            &json!({
                "https://example.com/roles": ["editor"], "permissions": ["reports:read"],
                "email": "alice@example.com", "email_verified": true,
            }),
        );
        let a = send(app(verifier), "GET", "/me", Some(&token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.body,
            json!({
                "principal": {
                    "issuer": ISSUER, "subject": "auth0|alice",
                    "email": "alice@example.com", "email_verified": true,
                    "client_id": "spa-client", "service_account": false,
                    "scopes": ["openid", "profile"], "permissions": ["reports:read"],
                    "roles": [{"name": "editor"}],
                },
                "tenant": "org_acme",
            })
        );
    }

    #[test]
    fn finding_8_a_principal_serialises_without_claims_or_extensions() {
        let p = mapper()
            .map(claims(json!({
                "iss": ISSUER, "sub": "s", "org_id": "org_acme", "secret_claim": "pii",
                "https://example.com/roles": ["admin"],
            })))
            .unwrap();
        let p = Principal::builder(p.issuer(), p.subject())
            .roles(
                p.roles()
                    .iter()
                    .cloned()
                    .chain([Role::client("api", "write")]),
            )
            .claims(p.claims().clone())
            .extension(Tenant("org_acme".into()))
            .build();
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            !text.contains("pii") && !text.contains("org_acme"),
            "{text}"
        );
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "issuer": ISSUER, "subject": "s", "email_verified": false,
                "service_account": false, "scopes": [], "permissions": [],
                "roles": [{"name": "admin"}, {"client": "api", "name": "write"}],
            })
        );
    }

    #[tokio::test]
    async fn finding_4_the_admin_route_needs_the_scope() {
        let (issuer, verifier) = setup();
        let reader = issuer.token("auth0|bob", "org_acme", &json!({}));
        let a = send(
            app(Arc::clone(&verifier)),
            "POST",
            "/admin/export",
            Some(&reader),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.body["code"], "insufficient_scope");
        assert_eq!(
            a.body["error"],
            "insufficient permissions: missing scope admin:write"
        );
        assert_eq!(
            a.challenge.as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="admin:write""#)
        );

        let admin = issuer.token(
            "auth0|root",
            "org_acme",
            &json!({"scope": "openid admin:write"}),
        );
        let a = send(app(verifier), "POST", "/admin/export", Some(&admin)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.text, "exported reports of org_acme");
    }

    #[tokio::test]
    async fn finding_4_a_suspended_tenant_is_refused_with_the_services_code() {
        let (issuer, verifier) = setup();
        let token = issuer.token("auth0|carol", "org_suspended", &json!({}));
        for (method, uri) in [("GET", "/me"), ("POST", "/admin/export")] {
            let a = send(app(Arc::clone(&verifier)), method, uri, Some(&token)).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN);
            assert_eq!(
                a.body,
                json!({"error": "tenant is suspended", "code": "tenant_suspended"})
            );
            assert_eq!(a.challenge, None);
        }
    }

    #[tokio::test]
    async fn finding_6_a_per_route_requirement_does_not_verify_again() {
        let (issuer, verifier) = setup();
        let admin = issuer.token("auth0|root", "org_acme", &json!({"scope": "admin:write"}));
        let reader = issuer.token("auth0|bob", "org_acme", &json!({}));
        for (token, status) in [(&admin, StatusCode::OK), (&reader, StatusCode::FORBIDDEN)] {
            let before = verifier.calls.load(Ordering::SeqCst);
            let a = send(
                app(Arc::clone(&verifier)),
                "POST",
                "/admin/export",
                Some(token),
            )
            .await;
            assert_eq!(a.status, status);
            assert_eq!(verifier.calls.load(Ordering::SeqCst), before + 1);
        }
        // Bad tokens never reach the route's requirement: the outer layer answers.
        let a = send(app(verifier), "POST", "/admin/export", Some("not-a-jwt")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.body["code"], "malformed");
    }

    #[tokio::test]
    async fn finding_6_a_requirement_without_an_authenticated_principal_fails_closed() {
        // Wired without an AuthLayer: no principal in the extensions.
        let app = Router::new()
            .route("/admin/export", post(export))
            .route_layer(RequireLayer::new(Requirement::scope("admin:write")));
        let a = send(app, "POST", "/admin/export", Some("anything")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.body["code"], "missing_authorization");
        assert_eq!(a.challenge.as_deref(), Some("Bearer"));
    }

    #[tokio::test]
    async fn finding_6_route_requirements_use_the_hierarchy() {
        let (issuer, verifier) = setup();
        let hierarchy = Arc::new(
            RoleHierarchy::from_pairs([(Role::new("owner"), Role::new("admin"))]).unwrap(),
        );
        let app = Router::new()
            .route("/admin/export", post(export))
            .route_layer(RequireLayer::new(Requirement::role("admin")).hierarchy(hierarchy))
            .layer(AuthLayer::from_arc(verifier));
        let owner = issuer.token(
            "auth0|o",
            "org_acme",
            &json!({"https://example.com/roles": ["owner"]}),
        );
        let editor = issuer.token(
            "auth0|e",
            "org_acme",
            &json!({"https://example.com/roles": ["editor"]}),
        );
        let a = send(app.clone(), "POST", "/admin/export", Some(&owner)).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = send(app, "POST", "/admin/export", Some(&editor)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.body["code"], "insufficient_role");
    }
}

// ---- finding 6 with plain tower (feature `http`) ----

#[cfg(feature = "http")]
mod tower_stack {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use agentcube_auth_core::http::{AuthLayer, RequireLayer};
    use bytes::Bytes;
    use http::{Request, Response, header};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn finding_6_require_layer_reuses_the_principal_and_reports_to_its_hook() {
        let issuer = Issuer::new();
        let verifier = Arc::new(StaticKeyVerifier::new(&issuer.key, mapper()));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let hook = {
            let seen = Arc::clone(&seen);
            move |e: &AuthError| seen.lock().unwrap().push(Rejection::code(e).to_string())
        };
        let service = ServiceBuilder::new()
            .layer(AuthLayer::from_arc(Arc::clone(&verifier)))
            .layer(RequireLayer::new(Requirement::permission("reports:write")).on_rejection(hook))
            .service(service_fn(|req: Request<Full<Bytes>>| async move {
                let tenant = req
                    .extensions()
                    .get::<Principal>()
                    .and_then(|p| p.extension::<Tenant>().map(|t| t.0.clone()));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                    tenant.unwrap_or_default(),
                ))))
            }));
        let call = |token: String| {
            let service = service.clone();
            async move {
                let req = Request::builder()
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::default())
                    .unwrap();
                let res = service.oneshot(req).await.unwrap();
                let status = res.status();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            }
        };
        let writer = issuer.token(
            "auth0|w",
            "org_acme",
            &json!({"permissions": ["reports:write"]}),
        );
        assert_eq!(
            call(writer).await,
            (StatusCode::OK, Bytes::from("org_acme"))
        );
        let reader = issuer.token("auth0|r", "org_acme", &json!({}));
        let (status, body) = call(reader).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "insufficient_permission");
        assert_eq!(*seen.lock().unwrap(), ["insufficient_permission"]);
        assert_eq!(verifier.calls.load(Ordering::SeqCst), 2);
    }
}
