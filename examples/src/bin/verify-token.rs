//! `verify-token`: why is this token rejected? (DESIGN §6)
//!
//! Reads tokens from standard input, one per line (a leading `Bearer ` is ignored, blank lines
//! are skipped), verifies each with one verifier for the whole run (so the key store behaves as
//! in a server: one discovery, one JWKS fetch, rate-limited refreshes), and prints one JSON line
//! per token:
//!
//! ```text
//! {"ok":true,"principal":{"issuer":"…","subject":"…","roles":["sandbox:invoke"],…},"token":{"alg":"RS256","kid":"…","exp":…}}
//! {"ok":false,"code":"audience_mismatch","error":"token audience does not include an accepted audience","status":401}
//! ```
//!
//! ```sh
//! echo "$TOKEN" | verify-token --issuer http://127.0.0.1:8180/realms/agentcube
//! verify-token --issuer https://kc.example/realms/agentcube \
//!     --jwks-url http://keycloak.internal:8080/realms/agentcube/protocol/openid-connect/certs \
//!     --audience agentcube-api,account --algorithms RS256 --leeway 0 < tokens.txt
//! ```
//!
//! Exit status: 0 when every token was accepted, 1 when any was rejected, 2 for bad arguments.
//! Problems loading the issuer's keys are reported on standard error at start-up.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use agentcube_auth_core::jose::AlgorithmSet;
use agentcube_auth_core::{AuthError, ClaimPathMapper, Principal};
use agentcube_examples::router::REFERENCE_ALGORITHMS;
use agentcube_oidc::{OidcConfig, OidcVerifier, VerifiedToken};
use clap::Parser;
use serde_json::{Value, json};

/// Verifies access tokens read from stdin (one per line) and prints one JSON line per token.
#[derive(Parser, Debug)]
#[command(name = "verify-token", version)]
struct Args {
    /// The issuer (`iss`), compared exactly; keys are found through its discovery document
    /// unless --jwks-url is given.
    #[arg(long, env = "AGENTCUBE_JWT_ISSUER_URL")]
    issuer: String,
    /// Accepted audiences, comma-separated.
    #[arg(
        long,
        env = "AGENTCUBE_JWT_AUDIENCE",
        value_delimiter = ',',
        default_value = agentcube_oidc::OidcConfig::DEFAULT_AUDIENCE
    )]
    audience: Vec<String>,
    /// Fetch keys from this JWKS URL instead of discovery.
    #[arg(long, env = "AGENTCUBE_JWT_JWKS_URL")]
    jwks_url: Option<String>,
    /// Fetch the discovery document from this URL (an issuer reachable at another address).
    #[arg(long, env = "AGENTCUBE_JWT_DISCOVERY_URL", conflicts_with = "jwks_url")]
    discovery_url: Option<String>,
    /// Accepted signing algorithms, comma-separated (default: the Router's allowlist).
    #[arg(long, env = "AGENTCUBE_JWT_ALGORITHMS", default_value = REFERENCE_ALGORITHMS)]
    algorithms: String,
    /// Read roles from this claim path (e.g. `groups`, `https://example.com/roles`) instead of
    /// Keycloak's realm and client roles.
    #[arg(long, env = "AGENTCUBE_JWT_ROLE_CLAIM")]
    role_claim: Option<String>,
    /// Clock-skew leeway in seconds.
    #[arg(long, env = "AGENTCUBE_JWT_LEEWAY", default_value_t = 30)]
    leeway: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let verifier = match build(&args) {
        Ok(v) => v,
        Err(message) => {
            eprintln!("verify-token: {message}");
            return ExitCode::from(2);
        }
    };
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
    // Load keys up front so a key-store problem is reported once, clearly, on stderr. Tokens
    // are still processed: each then answers `keys_unavailable`.
    if let Err(e) = runtime.block_on(verifier.refresh_keys()) {
        eprintln!("verify-token: cannot load the issuer's keys: {e}");
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_ok = true;
    for line in std::io::stdin().lock().lines() {
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
        let result = runtime.block_on(verifier.verify_with_details(token));
        all_ok &= result.is_ok();
        let report = match result {
            Ok(verified) => accepted(&verified),
            Err(err) => rejected(&err),
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

fn build(args: &Args) -> Result<OidcVerifier, String> {
    let algorithms = AlgorithmSet::parse_list(&args.algorithms).map_err(|e| e.to_string())?;
    let mut config = OidcConfig::new(args.issuer.clone())
        .audiences(args.audience.iter().map(|a| a.trim().to_owned()))
        .algorithms(algorithms)
        .leeway(Duration::from_secs(args.leeway));
    if let Some(url) = &args.jwks_url {
        config = config.jwks_url(url.clone());
    }
    if let Some(url) = &args.discovery_url {
        config = config.discovery_url(url.clone());
    }
    if let Some(path) = &args.role_claim {
        config = config.mapper(ClaimPathMapper::new(path.as_str()));
    }
    OidcVerifier::new(config).map_err(|e| e.to_string())
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
        "roles": p.roles().iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// `{"ok":true,"principal":{…},"token":{…}}`, with `ok` first as in DESIGN §6 (serde_json
/// objects sort their keys).
fn accepted(v: &VerifiedToken) -> String {
    let token = json!({
        "alg": v.algorithm.as_str(),
        "kid": v.kid.as_deref(),
        "exp": v.expires_at,
        "iat": v.issued_at,
        "key_thumbprint": &*v.key_thumbprint,
    });
    format!(
        r#"{{"ok":true,"principal":{},"token":{token}}}"#,
        principal_json(&v.principal)
    )
}

/// `{"ok":false,"code":"…","error":"…","status":401}`.
fn rejected(err: &AuthError) -> String {
    // Written by hand so `ok` comes first, as for the accepted lines.
    format!(
        r#"{{"ok":false,"code":{},"error":{},"status":{}}}"#,
        Value::from(err.code().as_str()),
        Value::from(err.to_string()),
        err.http_status().as_u16()
    )
}
