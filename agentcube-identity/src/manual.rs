//! The threat model of internal tokens, and how to operate keys. Documentation only.
//!
//! # What the tokens defend against
//!
//! | threat | defence |
//! |---|---|
//! | A client forges `X-AgentCube-User-Identity` to claim another user's identity | The Router strips any client-sent identity header; the WM accepts only tokens signed by a key in its key source, with `typ` `agentcube-identity+jwt`, `iss` `agentcube-router` and `aud` `workloadmanager`. |
//! | A missing header creates an ownerless sandbox | A missing header is [`AuthError::MissingAuthorization`](agentcube_auth_core::AuthError::MissingAuthorization), a 401, at the `AuthLayer` (or from `bearer::header_token`); a verifier never returns "no identity" as success. |
//! | The WM cannot load keys and answers 500 | Keys unavailable is [`AuthError::KeysUnavailable`](agentcube_auth_core::AuthError::KeysUnavailable), a 503 with code `keys_unavailable`; readiness reports [`InternalVerifier::is_ready`](crate::InternalVerifier::is_ready). |
//! | A sandbox replays the token it received to **another sandbox** | Sandbox tokens carry `aud` `sandbox:<session id>` and `session_id`; a verifier bound to session B ([`SessionBinding::Session`](crate::SessionBinding::Session)) rejects a token for session A with `audience_mismatch`. A sandbox can still replay its own token to itself, which grants nothing new. |
//! | A shared development sandbox ([`SessionBinding::AnySession`](crate::SessionBinding::AnySession)) is sent session A's token with a request about session B | Not stopped by the verifier: it proves only that the token is for *some* session. The handler must compare [`sandbox_session`](crate::sandbox_session) with the request's session. Never use that binding in production. |
//! | A sandbox replays its token to the **WM** as an identity token, or the reverse | Distinct header `typ` (`token_type_mismatch`) and distinct audiences. |
//! | An IdP access token is presented as an internal token, or the reverse | Distinct `typ`, `iss`, `aud` and keys: an access token has `typ` `JWT`/`at+jwt`/none, which [`TypePolicy::exactly`](agentcube_auth_core::jose::TypePolicy::exactly) rejects; an internal token's `typ` is rejected by the access-token policy, and its `iss`/`aud` match no IdP configuration. |
//! | A stolen token is used later | Short lifetimes (30 s identity, 60 s sandbox, at most 5 min, enforced by the verifier's lifetime cap even if a minter were misconfigured) and a 5 s leeway. |
//! | A cached verification outlives the token or its key | Each verifier's verified-token cache serves an entry only while the token is inside its time window (re-checked with the verifier's clock on every hit, entries evicted at `exp` at the latest) and while the key source still returns, for the token's `kid` and algorithm, the key that verified it: removing a key refuses its tokens at once (`unknown_kid`), cached or not. |
//! | A cached token for session A is served to session B's sandbox | Each verifier owns its cache and fills it only with tokens that passed its own checks, the session binding among them; a verifier bound to session B has never accepted session A's token. |
//! | A stolen token is used again within its lifetime | Optional [`ReplayGuard`](crate::ReplayGuard): single use by `jti`. It conflicts with the Router's token reuse, so it is off by default; the aud binding already confines a leaked sandbox token to its own session. |
//! | Algorithm confusion (`none`, HS256 with the public key, RS256 vs PS256) | `none`/HMAC cannot even be named; the default allowlist is EdDSA/ES256/RS256; every key is pinned to one `alg` in its JWK. |
//! | Header-supplied keys (`jku`, `jwk`, `x5u`, `x5c`) | Never read: keys come only from the verifier's key source. |
//! | Secrets in logs | `SigningKey`, `KeyRing`, `MintedToken`, `PrivateKeyPem` have redacted `Debug` and no `Display`; errors never include tokens or key material, and a [`MintError`](crate::MintError)'s public message says nothing about its cause. |
//!
//! What the tokens do **not** defend against: a compromised Router (it holds the signing key and
//! is trusted to say who the caller is), and a network attacker who can read traffic between the
//! Router and the WM or a sandbox (use TLS or a mesh for those hops; tokens are bearer tokens).
//!
//! # Key rotation
//!
//! 1. Add the new key: [`KeyRing::rotate`](crate::KeyRing::rotate) makes it active and keeps the
//!    old key for verification. The JWKS now lists both, the active key first. Cached tokens
//!    signed by the old key are no longer reused.
//! 2. Wait until every verifier has the new key (for a remote JWKS store, its refresh interval;
//!    an unknown `kid` also triggers a rate-limited refresh there) *and* every token signed by the
//!    old key has expired: at least the longest token lifetime plus the verifiers' leeway.
//! 3. Remove the old key: [`KeyRing::remove`](crate::KeyRing::remove). Tokens it signed now fail
//!    with `unknown_kid`.
//!
//! With several Router replicas, each publishes its own ring; give verifiers the union (or share
//! one key through a Kubernetes Secret holding `private.pem`). A verifier that reads a static
//! `public.pem` sees a rotation only when reloaded; prefer the JWKS endpoint.
//!
//! # Existing RSA keys
//!
//! An AgentCube Router deployed from the Kubernetes Secret `picod-router-identity` has
//! `private.pem` (PKCS#1 `RSA PRIVATE KEY`) and `public.pem` (SPKI `PUBLIC KEY`). [`KeyRing::from_private_pem`](crate::KeyRing::from_private_pem)
//! and [`KeyRing::from_public_pem`](crate::KeyRing::from_public_pem) read them as they are, and
//! tokens are then RS256. Signing with RSA-2048 costs about 0.3 ms, which the minting cache keeps
//! off the per-request path; moving to Ed25519 (about 12 µs) is a rotation like any other.
