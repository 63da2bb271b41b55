//! `verify-token`: why is this token rejected?
//!
//! Reads tokens from standard input, one per line (a leading `Bearer ` is ignored, blank lines
//! are skipped), verifies each with one verifier for the whole run (so the key store behaves as
//! in a server: one discovery, one JWKS fetch, rate-limited refreshes), and prints one JSON line
//! per token, `ok` first:
//!
//! ```text
//! {"ok":true,"principal":{"issuer":"…","subject":"…","roles":["sandbox:invoke"],…},"token":{"alg":"RS256","kid":"…","exp":…}}
//! {"ok":false,"code":"audience_mismatch","error":"token audience does not include an accepted audience","status":401}
//! ```
//!
//! `--explain` adds a `facts` object: what the token says beside what is configured, each with
//! `ok` and, when it is not, a `hint` naming the usual causes:
//!
//! | fact | compares |
//! |---|---|
//! | `iss` | the token's `iss` with the configured issuer (trailing slash, host-derived issuer) |
//! | `aud` | the token's `aud` (and `azp`) with the accepted audiences (Keycloak's audience mapper) |
//! | `kid` | the token's `kid` with the `kid`s the key source holds after this verification |
//! | `time` | `exp`, `nbf`, `iat` with now and the leeway |
//! | `typ` | the header `typ` (and Keycloak's payload `typ`) with what the kind accepts |
//! | `alg` | the header `alg` with the allowlist |
//! | `roles` | the roles found in a verified token with `--require-role` |
//! | `session` | (`--kind sandbox`) the token's session with `--session-id` |
//!
//! `--format text` prints the same for a human instead: one line per token, and with
//! `--explain` one indented line per fact. Neither form ever prints the token or its signature.
//!
//! `--kind identity` and `--kind sandbox` check the Router's own tokens (the workload manager's
//! and a sandbox's view) against `--router-jwks-url` (repeatable, one per Router replica) or
//! `--router-public-key`; `--issuer` defaults to `agentcube-router`, `--audience` to
//! `workloadmanager` (identity), the leeway to 5 s. A sandbox token is checked for
//! `--session-id`, or for any session without it.
//!
//! ```sh
//! echo "$TOKEN" | verify-token --issuer http://127.0.0.1:8180/realms/agentcube --explain
//! verify-token --issuer https://kc.example/realms/agentcube \
//!     --jwks-url http://keycloak.internal:8080/realms/agentcube/protocol/openid-connect/certs \
//!     --audience agentcube-api,account --algorithms RS256 --leeway 0 \
//!     --require-role sandbox:invoke --explain --format text < tokens.txt
//! verify-token --kind identity \
//!     --router-jwks-url http://router:8080/.well-known/agentcube/jwks.json --explain
//! ```
//!
//! Exit status: 0 when every token was accepted, 1 when any was rejected, 2 for bad arguments.
//! Problems loading the keys are reported on standard error at start-up.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use agentcube_auth_core::jose::{AlgorithmSet, EitherKeySource, TypePolicy, UnverifiedJws};
use agentcube_auth_core::{AuthError, ClaimPathMapper, Claims, Principal, Role};
use agentcube_examples::keys::{RouterKeys, router_keys_from_flags};
use agentcube_examples::router::REFERENCE_ALGORITHMS;
use agentcube_identity::{
    DEFAULT_IDENTITY_AUDIENCE, DEFAULT_ISSUER, IDENTITY_TOKEN_TYPE, IdentityVerifier,
    SANDBOX_AUDIENCE_PREFIX, SANDBOX_TOKEN_TYPE, SandboxVerifier, SessionBinding, VerifierConfig,
};
use agentcube_oidc::{KeyStoreConfig, OidcConfig, OidcVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use serde_json::{Map, Value, json};

/// The access-token leeway by default, in seconds.
const ACCESS_LEEWAY_SECS: u64 = 30;

/// The payload `typ` Keycloak gives access tokens, which the access verifier requires.
const KEYCLOAK_ACCESS_TYPE: &str = "Bearer";

/// The header `typ` values an access token may carry (or none).
const ACCESS_HEADER_TYPES: [&str; 2] = ["JWT", "at+jwt"];

/// The largest token looked at for the facts.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Which tokens are verified.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Access tokens of an OIDC issuer (Keycloak), as the Router verifies them.
    Access,
    /// The Router's identity tokens, as the workload manager verifies them.
    Identity,
    /// The Router's sandbox tokens, as a sandbox verifies them.
    Sandbox,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Identity => "identity",
            Self::Sandbox => "sandbox",
        }
    }
}

/// How the answers are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// One JSON object per line, `ok` first.
    Json,
    /// Human-readable lines.
    Text,
}

/// Verifies tokens read from stdin (one per line) and prints one JSON line per token.
#[derive(Parser, Debug)]
#[command(name = "verify-token", version)]
struct Args {
    /// What the tokens are: access tokens of an OIDC issuer, or the Router's identity or
    /// sandbox tokens.
    #[arg(long, value_enum, default_value = "access")]
    kind: Kind,
    /// The issuer (`iss`), compared exactly. Access tokens: required; keys are found through its
    /// discovery document unless --jwks-url is given. Router tokens: default `agentcube-router`.
    #[arg(long, env = "AGENTCUBE_JWT_ISSUER_URL")]
    issuer: Option<String>,
    /// Accepted audiences, comma-separated (access tokens: default `agentcube-api`; identity
    /// tokens: exactly one, default `workloadmanager`; not used for sandbox tokens).
    #[arg(long, env = "AGENTCUBE_JWT_AUDIENCE", value_delimiter = ',')]
    audience: Vec<String>,
    /// Fetch keys from this JWKS URL instead of discovery (access tokens).
    #[arg(long, env = "AGENTCUBE_JWT_JWKS_URL")]
    jwks_url: Option<String>,
    /// Fetch the discovery document from this URL (an issuer reachable at another address).
    #[arg(long, env = "AGENTCUBE_JWT_DISCOVERY_URL", conflicts_with = "jwks_url")]
    discovery_url: Option<String>,
    /// The Router's JWKS URL (Router tokens); repeat it (or comma-separate the environment
    /// variable) for several replicas.
    #[arg(long, env = "AGENTCUBE_ROUTER_JWKS_URL", value_delimiter = ',')]
    router_jwks_url: Vec<String>,
    /// The Router's public key, a PEM file path or the PEM itself (Router tokens).
    #[arg(
        long,
        env = "AGENTCUBE_ROUTER_PUBLIC_KEY",
        conflicts_with = "router_jwks_url"
    )]
    router_public_key: Option<String>,
    /// The session a sandbox token must be bound to (`--kind sandbox`); any session without it.
    #[arg(long, env = "AGENTCUBE_SESSION_ID")]
    session_id: Option<String>,
    /// Accepted signing algorithms, comma-separated (default: the Router's allowlist for access
    /// tokens, `EdDSA,ES256,RS256` for Router tokens).
    #[arg(long, env = "AGENTCUBE_JWT_ALGORITHMS")]
    algorithms: Option<String>,
    /// Read roles from this claim path (e.g. `groups`, `https://example.com/roles`) instead of
    /// Keycloak's realm and client roles (access tokens).
    #[arg(long, env = "AGENTCUBE_JWT_ROLE_CLAIM")]
    role_claim: Option<String>,
    /// Clock-skew leeway in seconds (default 30 for access tokens, 5 for Router tokens).
    #[arg(long, env = "AGENTCUBE_JWT_LEEWAY")]
    leeway: Option<u64>,
    /// A role the token must list (as it is, no hierarchy): a realm role name, or
    /// `<client>/<role>` for a client role. Repeatable or comma-separated; a token without it
    /// is rejected with `insufficient_role`.
    #[arg(long, value_delimiter = ',')]
    require_role: Vec<String>,
    /// Add the facts behind each answer (`facts`): the token's claims beside the configuration.
    #[arg(long)]
    explain: bool,
    /// `json` (one object per line) or `text` (for a human).
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

/// The configured verifier.
enum Checker {
    Access(Box<OidcVerifier>),
    Identity(IdentityVerifier<RouterKeys>),
    Sandbox(SandboxVerifier<RouterKeys>),
}

/// What a token is checked against: the configuration, for the facts.
struct Expected {
    kind: Kind,
    issuer: String,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    leeway: u64,
    session_id: Option<String>,
    required_roles: Vec<String>,
}

/// A verification's answer.
struct Answer {
    /// The accepted principal and token details, or why the token was rejected.
    result: Result<Value, AuthError>,
    /// The verified token's principal (also when a required role was missing).
    principal: Option<Principal>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verify-token: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let _enter = runtime.enter();
    let (checker, expected) = match build(&args) {
        Ok(built) => built,
        Err(message) => {
            eprintln!("verify-token: {message}");
            return ExitCode::from(2);
        }
    };
    // Load keys up front so a key-store problem is reported once, clearly, on stderr. Tokens
    // are still processed: each then answers `keys_unavailable`.
    if let Err(e) = runtime.block_on(load_keys(&checker)) {
        eprintln!("verify-token: cannot load the {e}");
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_ok = true;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("verify-token: reading stdin: {e}");
                return ExitCode::from(2);
            }
        };
        let Some(token) = token_of(&line) else {
            continue;
        };
        let answer = runtime.block_on(verify(&checker, &expected, token));
        all_ok &= answer.result.is_ok();
        let facts = args.explain.then(|| {
            facts(
                token,
                &expected,
                &known_kids(&checker),
                answer.principal.as_ref(),
                now(),
            )
        });
        let report = match args.format {
            Format::Json => json_line(&answer, facts.as_ref()),
            Format::Text => text_lines(number + 1, &answer, facts.as_ref()),
        };
        if writeln!(out, "{report}").is_err() {
            // stdout closed (e.g. piped into `head`): stop quietly.
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn build(args: &Args) -> Result<(Checker, Expected), String> {
    let default_algorithms = match args.kind {
        Kind::Access => {
            AlgorithmSet::parse_list(REFERENCE_ALGORITHMS).map_err(|e| e.to_string())?
        }
        Kind::Identity | Kind::Sandbox => VerifierConfig::DEFAULT_ALGORITHMS,
    };
    let algorithms = match &args.algorithms {
        Some(list) => AlgorithmSet::parse_list(list).map_err(|e| format!("--algorithms: {e}"))?,
        None => default_algorithms,
    };
    let audiences: Vec<String> = args
        .audience
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let required_roles: Vec<String> = args
        .require_role
        .iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    if args.kind == Kind::Access {
        let issuer = args
            .issuer
            .clone()
            .ok_or("--issuer is required for access tokens")?;
        let audiences = if audiences.is_empty() {
            vec![OidcConfig::DEFAULT_AUDIENCE.to_owned()]
        } else {
            audiences
        };
        let leeway = args.leeway.unwrap_or(ACCESS_LEEWAY_SECS);
        let mut config = OidcConfig::new(issuer.clone())
            .audiences(audiences.iter().cloned())
            .algorithms(algorithms)
            .leeway(Duration::from_secs(leeway));
        if let Some(url) = &args.jwks_url {
            config = config.jwks_url(url.clone());
        }
        if let Some(url) = &args.discovery_url {
            config = config.discovery_url(url.clone());
        }
        if let Some(path) = &args.role_claim {
            config = config.mapper(ClaimPathMapper::new(path.as_str()));
        }
        let verifier = OidcVerifier::new(config).map_err(|e| e.to_string())?;
        let expected = Expected {
            kind: args.kind,
            issuer,
            audiences,
            algorithms,
            leeway,
            session_id: None,
            required_roles,
        };
        return Ok((Checker::Access(Box::new(verifier)), expected));
    }

    if args.jwks_url.is_some() || args.discovery_url.is_some() {
        return Err(
            "Router tokens are verified against --router-jwks-url or --router-public-key, \
                    not --jwks-url or --discovery-url"
                .into(),
        );
    }
    let keys = router_keys_from_flags(
        &args.router_jwks_url,
        args.router_public_key.as_deref(),
        &KeyStoreConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let issuer = args
        .issuer
        .clone()
        .unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    let leeway = args
        .leeway
        .unwrap_or(VerifierConfig::DEFAULT_LEEWAY.as_secs());
    let mut config = VerifierConfig::new()
        .issuer(issuer.as_str())
        .algorithms(algorithms)
        .leeway(Duration::from_secs(leeway))
        // Every token is checked in full, so its facts and its answer always agree.
        .cache_capacity(0);
    let mut expected = Expected {
        kind: args.kind,
        issuer,
        audiences: Vec::new(),
        algorithms,
        leeway,
        session_id: None,
        required_roles,
    };
    let checker = match args.kind {
        Kind::Identity => {
            let audience = match audiences.as_slice() {
                [] => DEFAULT_IDENTITY_AUDIENCE.to_owned(),
                [one] => one.clone(),
                _ => {
                    return Err(
                        "identity tokens have exactly one audience: give one --audience".into(),
                    );
                }
            };
            config = config.identity_audience(audience.as_str());
            expected.audiences = vec![audience];
            Checker::Identity(
                IdentityVerifier::with_config(keys, config).map_err(|e| e.to_string())?,
            )
        }
        Kind::Sandbox | Kind::Access => {
            let binding = match &args.session_id {
                Some(id) => SessionBinding::session(id.as_str()),
                None => SessionBinding::AnySession,
            };
            expected.session_id.clone_from(&args.session_id);
            Checker::Sandbox(
                SandboxVerifier::with_config(keys, binding, config)
                    .map_err(|e| format!("--session-id: {e}"))?,
            )
        }
    };
    Ok((checker, expected))
}

/// Loads every key source once; the error names what could not be loaded.
async fn load_keys(checker: &Checker) -> Result<(), String> {
    match checker {
        Checker::Access(verifier) => verifier
            .refresh_keys()
            .await
            .map(|_| ())
            .map_err(|e| format!("issuer's keys: {e}")),
        Checker::Identity(verifier) => load_router_keys(verifier.keys()).await,
        Checker::Sandbox(verifier) => load_router_keys(verifier.keys()).await,
    }
}

async fn load_router_keys(keys: &RouterKeys) -> Result<(), String> {
    let EitherKeySource::Left(union) = keys else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for source in union.sources() {
        if let Err(e) = source.refresh_now().await {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("Router's keys: {}", errors.join("; ")))
    }
}

async fn verify(checker: &Checker, expected: &Expected, token: &str) -> Answer {
    let verified = match checker {
        Checker::Access(verifier) => verifier.verify_with_details(token).await.map(|v| {
            let details = json!({
                "alg": v.algorithm.as_str(),
                "kid": v.kid.as_deref(),
                "exp": v.expires_at,
                "iat": v.issued_at,
                "key_thumbprint": &*v.key_thumbprint,
            });
            (v.principal, details)
        }),
        Checker::Identity(verifier) => verifier.verify(token).await.map(|v| {
            let details = internal_details(
                v.algorithm().as_str(),
                v.kid(),
                v.expires_at(),
                v.issued_at(),
            );
            (v.to_principal(), details)
        }),
        Checker::Sandbox(verifier) => verifier.verify(token).await.map(|v| {
            let mut details = internal_details(
                v.algorithm().as_str(),
                v.kid(),
                v.expires_at(),
                v.issued_at(),
            );
            if let Value::Object(map) = &mut details {
                map.insert("session_id".into(), v.session_id().into());
            }
            (v.to_principal(), details)
        }),
    };
    match verified {
        Ok((principal, details)) => {
            let found = role_names(&principal);
            let missing = expected.required_roles.iter().find(|r| !found.contains(r));
            let result = match missing {
                Some(role) => Err(AuthError::InsufficientRole(parse_role(role))),
                None => Ok(json!({"principal": principal_json(&principal), "token": details})),
            };
            Answer {
                result,
                principal: Some(principal),
            }
        }
        Err(err) => Answer {
            result: Err(err),
            principal: None,
        },
    }
}

fn internal_details(alg: &str, kid: &str, exp: i64, iat: i64) -> Value {
    json!({"alg": alg, "kid": kid, "exp": exp, "iat": iat})
}

/// `admin` is a realm role, `client/role` a client role (as roles are printed).
fn parse_role(name: &str) -> Role {
    match name.split_once('/') {
        Some((client, role)) if !client.is_empty() && !role.is_empty() => {
            Role::client(client, role)
        }
        _ => Role::new(name),
    }
}

fn role_names(principal: &Principal) -> Vec<String> {
    principal.roles().iter().map(ToString::to_string).collect()
}

/// The `kid`s the checker's key source holds now.
fn known_kids(checker: &Checker) -> Vec<String> {
    let router = |keys: &RouterKeys| -> Vec<String> {
        match keys {
            EitherKeySource::Left(union) => union
                .sources()
                .iter()
                .flat_map(|source| {
                    source
                        .current()
                        .keys()
                        .iter()
                        .filter_map(|k| k.kid().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .collect(),
            EitherKeySource::Right(ring) => ring.kids(),
        }
    };
    let mut kids = match checker {
        Checker::Access(verifier) => verifier
            .key_store()
            .map(|store| {
                store
                    .current()
                    .keys()
                    .iter()
                    .filter_map(|k| k.kid().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Checker::Identity(verifier) => router(verifier.keys()),
        Checker::Sandbox(verifier) => router(verifier.keys()),
    };
    kids.sort();
    kids.dedup();
    kids
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The token on a line: trimmed, without a `Bearer ` prefix; `None` for a blank line.
fn token_of(line: &str) -> Option<&str> {
    let line = line.trim();
    let token = match line.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => line.get(7..)?.trim_start(),
        _ => line,
    };
    (!line.is_empty()).then_some(token)
}

fn principal_json(p: &Principal) -> Value {
    json!({
        "issuer": p.issuer(),
        "subject": p.subject(),
        "username": p.username(),
        "email": p.email(),
        "email_verified": p.email_verified(),
        "client_id": p.client_id(),
        "service_account": p.is_service_account(),
        "scopes": p.scopes().collect::<Vec<_>>(),
        "roles": role_names(p),
    })
}

// ---- output ----

/// `{"ok":true,"principal":{…},"token":{…}}` or `{"ok":false,"code":"…","error":"…","status":401}`,
/// with `"facts":{…}` last when explaining. Written by hand so `ok` comes first (serde_json
/// objects sort their keys).
fn json_line(answer: &Answer, facts: Option<&Value>) -> String {
    let mut line = match &answer.result {
        Ok(accepted) => format!(
            r#"{{"ok":true,"principal":{},"token":{}"#,
            accepted["principal"], accepted["token"]
        ),
        Err(err) => format!(
            r#"{{"ok":false,"code":{},"error":{},"status":{}"#,
            Value::from(err.code().as_str()),
            Value::from(err.to_string()),
            err.http_status().as_u16()
        ),
    };
    if let Some(facts) = facts {
        line.push_str(&format!(r#","facts":{facts}"#));
    }
    line.push('}');
    line
}

/// The order facts are printed in as text.
const FACT_ORDER: [&str; 8] = [
    "iss", "aud", "kid", "time", "typ", "alg", "roles", "session",
];

fn text_lines(number: usize, answer: &Answer, facts: Option<&Value>) -> String {
    let mut out = match &answer.result {
        Ok(accepted) => {
            let p = &accepted["principal"];
            format!(
                "token {number}: accepted: subject {} of {}, roles {}",
                list(&p["subject"]),
                list(&p["issuer"]),
                list(&p["roles"])
            )
        }
        Err(err) => format!(
            "token {number}: rejected: {} ({}): {err}",
            err.code().as_str(),
            err.http_status().as_u16()
        ),
    };
    let Some(facts) = facts else {
        return out;
    };
    for name in FACT_ORDER {
        let Some(fact) = facts.get(name) else {
            continue;
        };
        let ok = if fact["ok"] == true { "ok" } else { "NO" };
        out.push_str(&format!(
            "\n  {name:<7} {ok:<3} {}",
            describe(name, fact, facts)
        ));
        if let Some(hint) = fact.get("hint").and_then(Value::as_str) {
            out.push_str(&format!("\n              {hint}"));
        }
    }
    out
}

fn list(value: &Value) -> String {
    match value.as_array() {
        Some(items) if items.is_empty() => "(none)".to_owned(),
        Some(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        None if value.is_null() => "(none)".to_owned(),
        None => value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned),
    }
}

fn describe(name: &str, fact: &Value, facts: &Value) -> String {
    let s = |key: &str| list(&fact[key]);
    match name {
        "iss" => format!("token {}; expected {}", s("token"), s("expected")),
        "aud" => format!(
            "token {}; accepted {}{}",
            s("token"),
            s("accepted"),
            fact.get("azp")
                .and_then(Value::as_str)
                .map(|azp| format!("; azp {azp}"))
                .unwrap_or_default()
        ),
        "kid" => format!("token {}; known {}", s("token"), s("known")),
        "time" => {
            let mut parts = Vec::new();
            for (claim, rel) in [
                ("exp", "exp_in_secs"),
                ("nbf", "nbf_in_secs"),
                ("iat", "iat_in_secs"),
            ] {
                if let Some(at) = fact[claim].as_i64() {
                    let delta = fact[rel].as_i64().unwrap_or(0);
                    parts.push(format!("{claim} {at} ({})", relative(delta)));
                }
            }
            format!(
                "{}; now {}, leeway {} s",
                if parts.is_empty() {
                    "no times".to_owned()
                } else {
                    parts.join(", ")
                },
                facts["now"],
                facts["leeway_secs"]
            )
        }
        "typ" => {
            let mut text = format!("header {}; accepted {}", s("header"), s("accepted_header"));
            if fact.get("expected_payload").is_some() {
                text.push_str(&format!(
                    "; payload {}, expected {}",
                    s("payload"),
                    s("expected_payload")
                ));
            }
            text
        }
        "alg" => format!("token {}; allowed {}", s("token"), s("allowed")),
        "roles" if fact["found"].is_null() => format!(
            "not read (the token was not verified); required {}",
            s("required")
        ),
        "roles" => format!(
            "found {}; required {}; missing {}",
            s("found"),
            s("required"),
            s("missing")
        ),
        "session" => format!("token {}; expected {}", s("token"), s("expected")),
        _ => fact.to_string(),
    }
}

fn relative(delta: i64) -> String {
    match delta {
        0 => "now".to_owned(),
        d if d > 0 => format!("in {d} s"),
        d => format!("{} s ago", d.unsigned_abs()),
    }
}

// ---- the facts ----

/// The facts behind the answer for `token`. Reads the token without trusting it; never
/// includes the token or its signature.
fn facts(
    token: &str,
    expected: &Expected,
    known_kids: &[String],
    principal: Option<&Principal>,
    now: i64,
) -> Value {
    let header = header_of(token);
    let claims = UnverifiedJws::peek_claims(token, MAX_TOKEN_BYTES).ok();
    let mut facts = Map::new();
    facts.insert("kind".into(), expected.kind.as_str().into());
    facts.insert("now".into(), now.into());
    facts.insert("leeway_secs".into(), expected.leeway.into());
    let readable = header.is_some() && claims.is_some();
    facts.insert("readable".into(), readable.into());
    if !readable {
        facts.insert(
            "hint".into(),
            "not a compact JWS (three base64url segments of JSON): was the whole token pasted, \
             on one line? An opaque (non-JWT) access token cannot be verified here"
                .into(),
        );
    }
    let empty = Claims::new(Map::new());
    let claims = claims.as_ref().unwrap_or(&empty);
    let header = header.unwrap_or_default();
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);

    facts.insert("iss".into(), issuer_fact(claims, expected));
    facts.insert("aud".into(), audience_fact(claims, expected));
    let kid = string(header.get("kid"));
    facts.insert(
        "kid".into(),
        kid_fact(kid.as_deref(), known_kids, expected.kind),
    );
    facts.insert("time".into(), time_fact(claims, expected.leeway, now));
    facts.insert(
        "typ".into(),
        type_fact(string(header.get("typ")).as_deref(), claims, expected.kind),
    );
    let alg = string(header.get("alg"));
    let allowed: Vec<&str> = expected.algorithms.iter().map(|a| a.as_str()).collect();
    let alg_ok = alg.as_deref().is_some_and(|a| allowed.contains(&a));
    let mut alg_fact = json!({"ok": alg_ok, "token": alg, "allowed": allowed});
    if !alg_ok {
        hint(
            &mut alg_fact,
            match alg.as_deref() {
                None => "the header names no algorithm".to_owned(),
                Some(a) if a.starts_with("HS") || a == "none" => {
                    format!("{a} is never accepted (a shared secret, or no signature)")
                }
                Some(a) => format!(
                    "{a} is not in --algorithms; the issuer signs with a key type this \
                     configuration does not allow"
                ),
            },
        );
    }
    facts.insert("alg".into(), alg_fact);
    facts.insert(
        "roles".into(),
        roles_fact(principal, &expected.required_roles),
    );
    if expected.kind == Kind::Sandbox {
        facts.insert("session".into(), session_fact(claims, expected));
    }
    Value::Object(facts)
}

fn hint(fact: &mut Value, text: impl Into<String>) {
    if let Value::Object(map) = fact {
        map.insert("hint".into(), Value::String(text.into()));
    }
}

/// The header as JSON, read without any rule (the verifier applies them).
fn header_of(token: &str) -> Option<Map<String, Value>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let segment = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn issuer_fact(claims: &Claims, expected: &Expected) -> Value {
    let token = claims.issuer().ok().flatten();
    let wanted = expected.issuer.as_str();
    let ok = token == Some(wanted);
    let mut fact = json!({"ok": ok, "token": token, "expected": wanted});
    if ok {
        return fact;
    }
    let text = match token {
        None => "the token has no iss".to_owned(),
        Some(iss) if iss.trim_end_matches('/') == wanted.trim_end_matches('/') => {
            "they differ only by a trailing slash: iss is compared exactly, so give --issuer \
             exactly as the token has it (or fix the issuer URL on the other side)"
                .to_owned()
        }
        Some(iss) if iss.eq_ignore_ascii_case(wanted) => {
            "they differ only in letter case: iss is compared exactly".to_owned()
        }
        Some(iss) if expected.kind != Kind::Access => format!(
            "the Router signs with iss {DEFAULT_ISSUER} unless configured otherwise; this token \
             says {iss}: another Router deployment, or another --issuer there"
        ),
        Some(iss) => match (split_url(iss), split_url(wanted)) {
            (Some((token_origin, token_path)), Some((wanted_origin, wanted_path)))
                if token_path == wanted_path && token_origin != wanted_origin =>
            {
                format!(
                    "same realm path on another origin ({token_origin} vs {wanted_origin}): \
                     Keycloak derives iss from the URL the client used to get the token (or \
                     its hostname setting). Get tokens through the URL given as --issuer, or \
                     set Keycloak's hostname (KC_HOSTNAME) so every token carries one issuer"
                )
            }
            _ => "another issuer or realm issued this token".to_owned(),
        },
    };
    hint(&mut fact, text);
    fact
}

/// `(scheme://host[:port], path without trailing slash)`, the origin lower-cased.
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Some((
        format!("{scheme}://{authority}").to_ascii_lowercase(),
        path.trim_end_matches('/').to_owned(),
    ))
}

fn audience_fact(claims: &Claims, expected: &Expected) -> Value {
    let raw = claims.get("aud").cloned().unwrap_or(Value::Null);
    let token: Vec<String> = match &raw {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let azp = claims.authorized_party().ok().flatten().map(str::to_owned);
    match expected.kind {
        Kind::Access => {
            let ok = token.iter().any(|a| expected.audiences.contains(a));
            let mut fact = json!({
                "ok": ok, "token": raw, "accepted": expected.audiences, "azp": azp,
            });
            if !ok {
                let wanted = expected
                    .audiences
                    .first()
                    .map_or("agentcube-api", String::as_str);
                let client = azp.as_deref().unwrap_or("the client that requested it");
                let mut text = if token.is_empty() {
                    "the token has no aud. ".to_owned()
                } else {
                    format!("aud lists {} but none is accepted. ", token.join(", "))
                };
                if token.iter().all(|a| a == "account") && !token.is_empty() {
                    text.push_str(
                        "`account` is the audience Keycloak adds for its account-console \
                         roles, not this API. ",
                    );
                }
                text.push_str(&format!(
                    "Keycloak adds an API to aud only through an audience mapper: add an \
                     Audience mapper (Included Client Audience: {wanted}) to a client scope of \
                     {client}, then get a new token; or accept the audience the token has with \
                     --audience"
                ));
                hint(&mut fact, text);
            }
            fact
        }
        Kind::Identity => {
            let wanted = expected
                .audiences
                .first()
                .map_or(DEFAULT_IDENTITY_AUDIENCE, String::as_str);
            let ok = raw.as_str() == Some(wanted);
            let mut fact = json!({"ok": ok, "token": raw, "accepted": [wanted]});
            if !ok {
                let text = if raw
                    .as_str()
                    .is_some_and(|a| a.starts_with(SANDBOX_AUDIENCE_PREFIX))
                {
                    "this audience is a sandbox's: a sandbox token, check it with --kind sandbox"
                        .to_owned()
                } else if raw.is_array() {
                    "identity tokens carry exactly one audience (a string), not a list".to_owned()
                } else {
                    format!(
                        "identity tokens carry the workload manager's name ({DEFAULT_IDENTITY_AUDIENCE} \
                         unless the Router is configured otherwise)"
                    )
                };
                hint(&mut fact, text);
            }
            fact
        }
        Kind::Sandbox => {
            let wanted = expected.session_id.as_deref().map_or_else(
                || format!("{SANDBOX_AUDIENCE_PREFIX}<any session>"),
                agentcube_identity::sandbox_audience,
            );
            let ok = match (raw.as_str(), &expected.session_id) {
                (Some(aud), Some(_)) => aud == wanted,
                (Some(aud), None) => {
                    aud.len() > SANDBOX_AUDIENCE_PREFIX.len()
                        && aud.starts_with(SANDBOX_AUDIENCE_PREFIX)
                }
                (None, _) => false,
            };
            let mut fact = json!({"ok": ok, "token": raw, "accepted": [wanted]});
            if !ok {
                let text = if raw.as_str() == Some(DEFAULT_IDENTITY_AUDIENCE) {
                    "this audience is the workload manager's: an identity token, check it with \
                     --kind identity"
                        .to_owned()
                } else {
                    "sandbox tokens are bound to sandbox:<session id>; this one is for another \
                     session (see the session fact)"
                        .to_owned()
                };
                hint(&mut fact, text);
            }
            fact
        }
    }
}

fn kid_fact(kid: Option<&str>, known: &[String], kind: Kind) -> Value {
    let ok = kid.is_some_and(|k| known.iter().any(|known| known == k));
    let mut fact = json!({"ok": ok, "token": kid, "known": known});
    if ok {
        return fact;
    }
    let text = match (kid, kind) {
        (_, _) if known.is_empty() => {
            "no keys are loaded: the JWKS could not be fetched (see standard error)".to_owned()
        }
        (None, Kind::Access) => {
            "the token names no key (kid); with several keys published it cannot be matched"
                .to_owned()
        }
        (None, _) => "the token names no key (kid): the Router always names its key".to_owned(),
        (Some(_), Kind::Access) => "the issuer does not publish this key (the JWKS was fetched \
             again for it): the token was signed by another issuer or realm, or by a key the \
             issuer has removed since"
            .to_owned(),
        (Some(_), _) => "no Router replica given publishes this key (their JWKS were fetched \
             again for it): a replica missing from --router-jwks-url, a key already withdrawn \
             (previous.pem removed), or a Router restarted with an ephemeral key"
            .to_owned(),
    };
    hint(&mut fact, text);
    fact
}

fn time_fact(claims: &Claims, leeway: u64, now: i64) -> Value {
    let leeway_i = i64::try_from(leeway).unwrap_or(i64::MAX);
    let exp = claims.expires_at().ok().flatten();
    let nbf = claims.not_before().ok().flatten();
    let iat = claims.issued_at().ok().flatten();
    let delta = |at: Option<i64>| at.map(|at| at.saturating_sub(now));
    let expired = exp.is_some_and(|exp| now > exp.saturating_add(leeway_i));
    let early = nbf.is_some_and(|nbf| now < nbf.saturating_sub(leeway_i));
    let future = iat.is_some_and(|iat| iat > now.saturating_add(leeway_i));
    let ok = exp.is_some() && !expired && !early && !future;
    let mut fact = json!({
        "ok": ok,
        "exp": exp, "exp_in_secs": delta(exp),
        "nbf": nbf, "nbf_in_secs": delta(nbf),
        "iat": iat, "iat_in_secs": delta(iat),
    });
    let text = match (exp, nbf, iat) {
        (None, _, _) => Some("the token has no exp".to_owned()),
        (Some(exp), _, _) if expired => Some(format!(
            "expired {} s ago, beyond the {leeway} s leeway: get a new token (or this machine's \
             clock is ahead of the issuer's by more than the leeway)",
            now.saturating_sub(exp)
        )),
        (_, Some(nbf), _) if early => Some(format!(
            "not valid for another {} s (nbf), beyond the {leeway} s leeway: the issuer's clock \
             is ahead of this machine's",
            nbf.saturating_sub(now)
        )),
        (_, _, Some(iat)) if future => Some(format!(
            "issued {} s in the future, beyond the {leeway} s leeway: the issuer's clock is \
             ahead of this machine's",
            iat.saturating_sub(now)
        )),
        _ => None,
    };
    if let Some(text) = text {
        hint(&mut fact, text);
    }
    fact
}

fn type_fact(header_typ: Option<&str>, claims: &Claims, kind: Kind) -> Value {
    let (accepted, policy): (Vec<&str>, TypePolicy) = match kind {
        Kind::Access => (
            ACCESS_HEADER_TYPES.to_vec(),
            TypePolicy::new(ACCESS_HEADER_TYPES, true),
        ),
        Kind::Identity => (
            vec![IDENTITY_TOKEN_TYPE],
            TypePolicy::exactly(IDENTITY_TOKEN_TYPE),
        ),
        Kind::Sandbox => (
            vec![SANDBOX_TOKEN_TYPE],
            TypePolicy::exactly(SANDBOX_TOKEN_TYPE),
        ),
    };
    let header_ok = policy.accepts(header_typ);
    let payload = claims.get("typ").and_then(Value::as_str);
    let mut fact = json!({
        "ok": header_ok,
        "header": header_typ,
        "accepted_header": accepted,
        "header_may_be_absent": kind == Kind::Access,
    });
    let mut text = None;
    if kind == Kind::Access {
        let payload_ok = payload == Some(KEYCLOAK_ACCESS_TYPE);
        if let Value::Object(map) = &mut fact {
            map.insert("payload".into(), payload.into());
            map.insert("expected_payload".into(), KEYCLOAK_ACCESS_TYPE.into());
            map.insert("ok".into(), (header_ok && payload_ok).into());
        }
        if !payload_ok {
            text = Some(match payload {
                Some(t) if t.eq_ignore_ascii_case("ID") => {
                    "an ID token, not an access token: send the access_token of the token \
                     response"
                        .to_owned()
                }
                Some(t)
                    if t.eq_ignore_ascii_case("Refresh") || t.eq_ignore_ascii_case("Offline") =>
                {
                    "a refresh token, not an access token".to_owned()
                }
                Some(t) => {
                    format!("payload typ {t} is not an access token's ({KEYCLOAK_ACCESS_TYPE})")
                }
                None => format!(
                    "the payload has no typ; Keycloak access tokens say {KEYCLOAK_ACCESS_TYPE}"
                ),
            });
        }
    }
    if !header_ok {
        text = Some(match (header_typ, kind) {
            (Some(t), _) if t == IDENTITY_TOKEN_TYPE => {
                "a Router identity token: check it with --kind identity".to_owned()
            }
            (Some(t), _) if t == SANDBOX_TOKEN_TYPE => {
                "a Router sandbox token: check it with --kind sandbox".to_owned()
            }
            (None, _) => {
                "the header has no typ; the Router's tokens always carry theirs".to_owned()
            }
            (Some(t), Kind::Access) => format!("header typ {t} is not an access token's"),
            (Some(_), _) => {
                "not a Router token of this kind: an access token is checked with --kind access"
                    .to_owned()
            }
        });
    }
    if let Some(text) = text {
        hint(&mut fact, text);
    }
    fact
}

fn roles_fact(principal: Option<&Principal>, required: &[String]) -> Value {
    let Some(principal) = principal else {
        let mut fact = json!({
            "ok": required.is_empty(),
            "found": Value::Null,
            "required": required,
            "missing": Value::Null,
        });
        if !required.is_empty() {
            hint(
                &mut fact,
                "roles are read from a verified token only: see the other facts",
            );
        }
        return fact;
    };
    let found = role_names(principal);
    let missing: Vec<&String> = required.iter().filter(|r| !found.contains(r)).collect();
    let mut fact = json!({
        "ok": missing.is_empty(),
        "found": found,
        "required": required,
        "missing": missing,
    });
    if !missing.is_empty() {
        hint(
            &mut fact,
            "roles are compared as the token lists them (no hierarchy). In Keycloak, assign the \
             role to the user, or to the client's service account, directly or through a \
             composite or default role, then get a new token; a client role is written \
             <client>/<role>",
        );
    }
    fact
}

fn session_fact(claims: &Claims, expected: &Expected) -> Value {
    let token = claims.get("session_id").and_then(Value::as_str);
    let aud = claims.get("aud").and_then(Value::as_str);
    let aud_session = aud.and_then(|a| a.strip_prefix(SANDBOX_AUDIENCE_PREFIX));
    let consistent = token.is_some() && token == aud_session;
    let ok = consistent
        && expected
            .session_id
            .as_deref()
            .is_none_or(|wanted| token == Some(wanted));
    let mut fact = json!({
        "ok": ok,
        "token": token,
        "expected": expected.session_id.as_deref().unwrap_or("any session"),
    });
    if !ok {
        hint(
            &mut fact,
            if consistent {
                "the token was minted for another session than --session-id: a sandbox accepts \
                 only tokens for the session it serves"
            } else {
                "session_id and aud (sandbox:<session id>) must name the same session"
            },
        );
    }
    fact
}
