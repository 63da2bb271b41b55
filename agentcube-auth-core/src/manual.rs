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
//! - **One meaning per token.** Duplicate JSON members are rejected at every depth, in the
//!   header (members the verifier skips included) as in the payload; so are lone surrogate
//!   escapes, raw control characters in strings and numbers out of range; `crit` is rejected; a
//!   JWE is rejected. Two parsers can therefore never disagree on what a token says.
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
//!   input ([`Untrusted`](crate::Untrusted)), never a token. What a client is told is described
//!   next.
//! - **Retry after a 503.** Every 503 the `http` feature renders carries `Retry-After: 1`
//!   (`http::RETRY_AFTER_SECS`): missing keys are a passing state, and a service whose key
//!   source has never loaded retries within 100 ms, doubling, so it is usually ready about a
//!   second after its dependency answers. 401 and 403 carry no `Retry-After`: retrying the same
//!   token cannot help.
//!
//! # What a rejection tells the client
//!
//! A rejection's body is `{"error": "<message>", "code": "<code>"}`. The **code is the precise
//! reason** (`expired`, `invalid_signature`, `audience_mismatch`, `insufficient_role`, …) and
//! every response carries it; the **message** is for people, and for every bad-token code it is
//! the same `invalid or expired token` (the text existing clients match on).
//!
//! Sending the precise code is a decision, not an oversight:
//!
//! - it is part of the contract: command-line tools, SDKs and end-to-end tests outside this
//!   crate branch on it (refresh on `expired`, report a misconfigured audience on
//!   `audience_mismatch`, wait on `keys_unavailable`), and a stable machine code is what lets
//!   them do that without parsing prose;
//! - it reveals nothing secret. A caller holding a token can read its claims without any key,
//!   and the issuer's keys are public; the code names which rule the token broke, which such a
//!   caller can work out by trying. The checks do not rely on their configuration being
//!   hidden: an algorithm allowlist, an audience and an issuer are not secrets;
//! - what would help an attacker stays out: the token itself, key material, the sanitised
//!   copies of the token's values and the details behind a code (which claim, which `kid`),
//!   which go to the server's logs through the layer's rejection hook.
//!
//! So the message stays vague for continuity, not secrecy; a client that needs the reason reads
//! `code`.
//!
//! # Time
//!
//! Claim checks read wall-clock time through [`Clock`](crate::Clock) so tests can move time
//! with [`ManualClock`](crate::ManualClock). The default leeway is 30 s;
//! a token is valid at exactly `exp + leeway` and expired one second later.
