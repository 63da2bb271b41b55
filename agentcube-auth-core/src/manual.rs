//! The manual: threat model and the reasons behind the defaults. Documentation only.
//!
//! # What is defended
//!
//! A Router at the public edge receives bearer tokens from anyone on the internet. An attacker
//! may send any bytes, replay tokens they captured, use tokens minted for other clients or
//! other purposes, and try to make the Router do expensive work (crypto, network fetches) per
//! request. Behind the Router, internal tokens (identity and sandbox tokens) must not be usable
//! outside the hop they were minted for.
//!
//! # Rules, and why
//!
//! - **Cheapest checks first.** [`jose::UnverifiedJws::parse`](crate::jose::UnverifiedJws::parse)
//!   applies size, framing and header rules before any key lookup, so malformed or disallowed
//!   tokens cost microseconds and never cause a fetch from the identity provider.
//! - **No algorithm confusion.** [`jose::Algorithm`](crate::jose::Algorithm) cannot express
//!   `none` or HMAC; the algorithm must be in the allowlist *and* fit the key's type and the
//!   JWK's own `alg` ([`ErrorCode::KeyAlgorithmMismatch`](crate::ErrorCode::KeyAlgorithmMismatch)).
//! - **Keys only from configuration.** `jku`, `x5u`, `jwk` and `x5c` in a header are never read.
//! - **No key anyone can sign for.** Each key of a key set is checked when it is loaded
//!   ([`jose::VerificationKey::from_jwk`](crate::jose::VerificationKey::from_jwk)), and a bad one
//!   is skipped alone, never failing the set. Skipped as
//!   [`SkipReason::WeakKey`](crate::jose::SkipReason::WeakKey): an RSA modulus under 2048 bits;
//!   an RSA public exponent that is not odd or not in `3..2^32` (with `e = 1` the signature is
//!   the padded message itself); an Ed25519 point of small order in any of its 14 encodings
//!   (with the identity point as the key, the signature `R = identity, S = 0` verifies for every
//!   message, and the bare signature primitive accepts it). Skipped as
//!   [`SkipReason::InvalidKeyMaterial`](crate::jose::SkipReason::InvalidKeyMaterial): an Ed25519
//!   key whose `y` is not reduced modulo `2^255 - 19`, so one key has one encoding.
//! - **One meaning per token.** Duplicate JSON members are rejected at every depth; `crit` is
//!   rejected; a JWE is rejected. Two parsers can therefore never disagree on what a token says.
//! - **Typed claims.** A claim of the wrong JSON type is
//!   [`ErrorCode::InvalidClaim`](crate::ErrorCode::InvalidClaim), never "absent": a string `exp`
//!   does not make a token immortal.
//! - **Exact issuer.** `iss` is compared byte for byte; a trailing slash is another issuer.
//! - **Namespaced roles.** A client role is a [`Role::client`](crate::Role::client); another
//!   client's `admin` can never satisfy a requirement for the realm's `admin`.
//! - **Roles only where the issuer writes them.**
//!   [`KeycloakClaimMapper`](crate::KeycloakClaimMapper) reads the nested `realm_access` →
//!   `roles` and `resource_access` → client → `roles`; a top-level member literally named
//!   `"realm_access.roles"` (which a protocol mapper or a user attribute could add) grants
//!   nothing. A configured [`ClaimPathMapper`](crate::ClaimPathMapper) path prefers such a flat
//!   member on purpose, since namespaced claim names contain dots.
//! - **Bounded work.** Token size (8 KiB), `kid` length (128 bytes), JSON nesting (128), key
//!   count per JWKS, and one signature check per token (a token without `kid` is checked against
//!   the single fitting key or rejected, never against every key).
//! - **Fail closed, visibly.** Missing keys are
//!   [`ErrorCode::KeysUnavailable`](crate::ErrorCode::KeysUnavailable) (503), not a 401 that
//!   clients would "fix" by re-authenticating, and never an allow.
//! - **Nothing secret in output.** Errors carry codes and bounded, sanitised copies of attacker
//!   input ([`Untrusted`](crate::Untrusted)), never a token. Client-facing messages for token
//!   failures are the deliberately vague `invalid or expired token`; the precise reason is
//!   the stable code, for logs and metrics.
//!
//! # Time
//!
//! Claim checks read wall-clock time through [`Clock`](crate::Clock) so tests can move time
//! with [`ManualClock`](crate::ManualClock). The default leeway is 30 s;
//! a token is valid at exactly `exp + leeway` and expired one second later.
