//! The manual: threat model, defaults, and the decisions behind the behaviour.
//!
//! # Threat model
//!
//! The verifier sits on the request path of a public service. It must assume that:
//!
//! * **every token is hostile** until its signature verified: its header, its `kid`, its claims
//!   and its size are chosen by the attacker;
//! * **the attacker can send many requests**, so anything a request can make the service do
//!   (hash, parse, fetch, log) must be bounded per request, and anything that reaches the
//!   identity provider must be bounded per unit of time, not per request;
//! * **the identity provider can be slow, down, or misconfigured** (a JWKS with an encryption
//!   key, an HTML error page, a redirect), and the service must stay up and fail closed;
//! * **logs and memory dumps leak**, so tokens never appear in `Debug`, `Display`, error
//!   messages or `tracing` events, and the verified-token cache is keyed by a keyed hash.
//!
//! The network is trusted only as far as TLS makes it so: the discovery document and JWKS are
//! fetched over `https` (or plain `http` only when the configured URL itself is `http`, for
//! in-cluster development issuers); a discovery document that came over `https` can name only
//! `https` endpoints — the JWKS here, and the token, authorization and device authorization
//! endpoints of the client — so an `https` issuer never leads to a key set from an
//! unauthenticated channel or to a client secret sent in clear; redirects are followed only
//! within the same origin (and never by the client, whose requests carry credentials).
//!
//! ## Attacks and what stops them
//!
//! | attack | defence | code |
//! |---|---|---|
//! | `alg: none`, any spelling | algorithms are an enum without `none`; the allowlist is checked before any key lookup | `algorithm_not_allowed` |
//! | HS256 signed with the RSA public key | HMAC cannot be named; keys are bound to their type | `algorithm_not_allowed` |
//! | RS256 header naming an EC key (`kid` of another type) | each key verifies only the algorithms of its type and its JWK `alg` | `key_algorithm_mismatch` |
//! | `jku`/`x5u`/`jwk`/`x5c` in the header | never read; keys come only from the configured issuer | `unknown_kid` / `invalid_signature` |
//! | `crit` extensions | rejected (none are understood) | `unsupported_critical_header` |
//! | duplicate JSON members (`"sub":"a","sub":"admin"`) | strict parser rejects them at every depth | `malformed` |
//! | `"exp": "9999999999"` and other wrong types | typed accessors: wrong type is an error, not "absent" | `invalid_claim` |
//! | huge tokens, many dots, huge `kid` | size checked before decoding or hashing (8 KiB); decoded header ≤ 1 KiB; `kid` ≤ 128 printable ASCII | `token_too_large` / `malformed` |
//! | ECDSA `r = s = 0`, DER signatures, wrong lengths | fixed-size signatures checked at framing; aws-lc-rs rejects zero scalars | `malformed` / `invalid_signature` |
//! | random `kid` flood → JWKS fetch flood | unknown `kid` refreshes at most once per cooldown (30 s), single-flight; a fresh set is authoritative | `unknown_kid` |
//! | bad signature with a known `kid` | never causes a fetch | `invalid_signature` |
//! | ID / refresh / logout tokens used as access tokens | payload `typ` must be `Bearer` when present; refresh tokens are HS512 | `token_type_mismatch` / `algorithm_not_allowed` |
//! | token for another audience (`account`) | `aud` must contain a configured audience; `account` only if configured | `audience_mismatch` |
//! | token of a look-alike issuer (`…/realms/agentcube/`) | exact string comparison, after the signature | `issuer_mismatch` |
//! | another client's `admin` role | the Keycloak mapper namespaces client roles by client | (no privilege) |
//! | oversized or endless JWKS response | body cap (256 KiB) enforced while streaming, 32-key cap, timeouts | fetch fails, old keys kept |
//! | JWKS redirect to an attacker's host | cross-origin redirects are not followed | fetch fails |
//! | cache poisoning / aimed collisions | 128-bit SipHash under a random per-process key, over a 128-bit XXH3 of the token and the end of its signature (`Digest::of_token`: a token lands on another's entry only if it carries that token's signature, and then gets that token's own principal) | — |
//!
//! # Defaults
//!
//! Every default is the secure choice; the ones this crate defines are associated constants of
//! their configuration type, the JOSE ones come from `agentcube_auth_core::jose`.
//!
//! | setting | default | constant | setter |
//! |---|---|---|---|
//! | audiences | `agentcube-api` | [`OidcConfig::DEFAULT_AUDIENCE`](crate::OidcConfig::DEFAULT_AUDIENCE) | [`OidcConfig::audiences`](crate::OidcConfig::audiences) |
//! | algorithms | `RS256` | — | [`OidcConfig::algorithms`](crate::OidcConfig::algorithms) |
//! | leeway | 30 s | [`jose::DEFAULT_LEEWAY`](agentcube_auth_core::jose::DEFAULT_LEEWAY) | [`OidcConfig::leeway`](crate::OidcConfig::leeway) |
//! | max token size | 8 KiB | [`jose::DEFAULT_MAX_TOKEN_BYTES`](agentcube_auth_core::jose::DEFAULT_MAX_TOKEN_BYTES) | [`OidcConfig::max_token_bytes`](crate::OidcConfig::max_token_bytes) |
//! | header `typ` | `JWT`, `at+jwt`, absent | [`TypePolicy::access_token`](agentcube_auth_core::jose::TypePolicy::access_token) | [`OidcConfig::header_types`](crate::OidcConfig::header_types) |
//! | payload `typ` | `Bearer` when present | — | [`OidcConfig::payload_type`](crate::OidcConfig::payload_type) |
//! | `azp` allowlist, lifetime cap, required claims, required `iat` | off | — | [`OidcConfig`](crate::OidcConfig) |
//! | refresh cooldown | 30 s | [`KeyStoreConfig::DEFAULT_REFRESH_COOLDOWN`](crate::KeyStoreConfig::DEFAULT_REFRESH_COOLDOWN) | [`KeyStoreConfig::refresh_cooldown`](crate::KeyStoreConfig::refresh_cooldown) |
//! | refresh interval without `max-age` | 5 min | [`KeyStoreConfig::DEFAULT_REFRESH_INTERVAL`](crate::KeyStoreConfig::DEFAULT_REFRESH_INTERVAL) | [`KeyStoreConfig::default_refresh_interval`](crate::KeyStoreConfig::default_refresh_interval) |
//! | refresh interval bounds (`max-age` × 0.9 is clamped into them) | 1 min, 15 min | [`KeyStoreConfig::DEFAULT_MIN_REFRESH_INTERVAL`](crate::KeyStoreConfig::DEFAULT_MIN_REFRESH_INTERVAL), [`KeyStoreConfig::DEFAULT_MAX_REFRESH_INTERVAL`](crate::KeyStoreConfig::DEFAULT_MAX_REFRESH_INTERVAL) | [`KeyStoreConfig::refresh_interval_bounds`](crate::KeyStoreConfig::refresh_interval_bounds) |
//! | failed refresh retry | before any keys: 100 ms doubling up to the cooldown; after: the cooldown doubling up to the upper refresh bound | — | — |
//! | max staleness | 24 h | [`KeyStoreConfig::DEFAULT_MAX_STALENESS`](crate::KeyStoreConfig::DEFAULT_MAX_STALENESS) | [`KeyStoreConfig::max_staleness`](crate::KeyStoreConfig::max_staleness) |
//! | response cap | 256 KiB | [`KeyStoreConfig::DEFAULT_MAX_RESPONSE_BYTES`](crate::KeyStoreConfig::DEFAULT_MAX_RESPONSE_BYTES) | [`KeyStoreConfig::max_response_bytes`](crate::KeyStoreConfig::max_response_bytes) |
//! | key cap | 32 keys | [`jose::DEFAULT_MAX_KEYS`](agentcube_auth_core::jose::DEFAULT_MAX_KEYS) | [`KeyStoreConfig::max_keys`](crate::KeyStoreConfig::max_keys) |
//! | timeouts | connect 5 s, request 10 s | [`KeyStoreConfig::DEFAULT_CONNECT_TIMEOUT`](crate::KeyStoreConfig::DEFAULT_CONNECT_TIMEOUT), [`KeyStoreConfig::DEFAULT_REQUEST_TIMEOUT`](crate::KeyStoreConfig::DEFAULT_REQUEST_TIMEOUT) | [`KeyStoreConfig::timeouts`](crate::KeyStoreConfig::timeouts) |
//! | cache size | 10,000 entries | [`CacheConfig::DEFAULT_MAX_ENTRIES`](crate::CacheConfig::DEFAULT_MAX_ENTRIES) | [`CacheConfig::max_entries`](crate::CacheConfig::max_entries) |
//! | cache entry lifetime | ≤ 5 min, never past `exp` | [`CacheConfig::DEFAULT_MAX_TTL`](crate::CacheConfig::DEFAULT_MAX_TTL) | [`CacheConfig::max_ttl`](crate::CacheConfig::max_ttl) |
//!
//! Settings that cannot work are refused when the verifier is built, with a
//! [`ConfigError`](crate::ConfigError): an issuer that is not an http(s) URL, no audience, no
//! algorithm, an empty `azp` allowlist, a zero token size, a zero response or key cap, a zero
//! lower bound of the refresh interval. Zero cache entries or TTL turn the cache off; a zero
//! cooldown lets every unknown `kid` fetch.
//!
//! # Decisions behind the behaviour
//!
//! * **Order inside step 5.** `iss`, `aud`, `exp`/`nbf`/`iat` (the lifetime cap is part of the
//!   time check), `sub`, payload `typ`, `azp`, then configured required claims. An ID token with
//!   the client as audience therefore fails with `audience_mismatch` before its `typ` is seen.
//! * **The cache comes before framing.** A cache hit means this string (or one that carries its
//!   exact signature and collides on XXH3 — which only the holder of the token can make, for
//!   the same principal) already passed every check under this verifier's configuration, so the lookup (after the size limit) is
//!   safe first, and makes a repeat cost one hash and one lookup. On a hit `exp`/`nbf`/`iat` are
//!   re-checked with the injected clock, the verifying key must still be in the current set,
//!   and the set must still be usable (not too stale); otherwise the entry is dropped and the
//!   token is verified in full, which reports the precise error.
//! * **Tokens inside their leeway window are not cached** (the entry's TTL is `exp - now`,
//!   capped by the cache TTL).
//! * **Absent `azp` with an allowlist** is `missing_claim` (`azp`); a different one is
//!   `azp_not_allowed`.
//! * **Payload `typ`** is compared case-insensitively (`bearer` passes); wrong JSON type is
//!   `invalid_claim`.
//! * **A JWKS with no usable key** is a failed fetch (`no_usable_keys`): the previous set is
//!   kept, and a verifier that never had keys stays `keys_unavailable`.
//! * **The cooldown counts from the last refresh a lookup caused** (unknown `kid`, too-stale
//!   set) and, while the issuer is failing, from the last failed attempt. The initial fetch,
//!   background refreshes and explicit refreshes
//!   ([`OidcVerifier::refresh_keys`](crate::OidcVerifier::refresh_keys),
//!   [`RemoteKeySet::refresh_now`](crate::RemoteKeySet::refresh_now), the operator's call) do
//!   not start it, so a key published right after one of them is picked up by the first token
//!   that names it, while a flood of invented `kid`s still costs one request per cooldown.
//! * **Fetches run in their own task** holding the single-flight lock, so a request that gives
//!   up (client disconnect) cancels neither the fetch nor the cooldown bookkeeping, and the
//!   next caller joins the running fetch.
//! * **Without the background task**, a request that finds the key set due for refresh spawns
//!   one refresh on the current tokio runtime and does not wait for it. Services should still
//!   call [`OidcVerifier::spawn_background_refresh`](crate::OidcVerifier::spawn_background_refresh)
//!   at start-up: it fetches at once (so the first request is fast) and keeps the set fresh even
//!   without traffic.
//! * **Discovery** is `{issuer}/.well-known/openid-configuration` with a trailing `/` of the
//!   issuer dropped first (OIDC Discovery §4); the `jwks_uri` is re-discovered after a failed
//!   JWKS fetch.
//! * **ETag** is honoured with `If-None-Match`; `Last-Modified` is not used (Keycloak sends
//!   neither, and ETag covers the rest).
//! * **Multi-issuer routing** checks framing, reads `iss`, then hands the token to that issuer's
//!   verifier, whose header rules apply; an unknown issuer is `unknown_issuer`, an absent one
//!   `missing_claim`. It is ready when any issuer is ready (it can serve that issuer's callers);
//!   [`MultiIssuerVerifier::all_ready`](crate::MultiIssuerVerifier::all_ready) is the strict
//!   form.
//! * **Key-store time is tokio time** (`tokio::time::Instant`), claim time is the injected
//!   [`Clock`](agentcube_auth_core::Clock): tests pause the first and set the second.
//!
//! # Crypto and dependencies
//!
//! Verification uses aws-lc-rs through `agentcube_auth_core::jose` (keys parsed once per key
//! set); the test issuer signs with the same layer's `SigningKey`. `jsonwebtoken` is not used
//! here: its decoding is replaced by the stricter `jose` pipeline and it cannot generate keys.
//! `josekit` is not used either: RFC 7638 thumbprints and key generation are covered without
//! OpenSSL.
//!
//! **`openidconnect` is not used for verification.** It would bring RustCrypto's `rsa` crate,
//! which carries an unfixed timing side-channel advisory, RUSTSEC-2023-0071 (the "Marvin"
//! attack on RSA decryption), and with it a second crypto stack beside aws-lc-rs. Verification
//! needs none of it: signatures are checked by aws-lc-rs, and the provider metadata the crate
//! needs (the discovery document) is read by its own small type, with the issuer check and the
//! downgrade rule above.
//!
//! The client flows (feature `client`, off by default) use the `oauth2` crate for the protocol
//! (request encoding, client authentication, error responses, PKCE) without its default
//! features, so it brings no HTTP client, no TLS stack and no `ring`; it does bring RustCrypto's
//! `sha2` hash (for the PKCE challenge), accepted because a hash function is not a second crypto
//! backend (see [`client`](crate::client)'s design notes).
//!
//! **One HTTP layer.** The key store and the client send every request through the same module:
//! reqwest with rustls (the workspace's choice), a body cap enforced while streaming, a connect
//! and a total timeout, one user agent (`agentcube-oidc/VERSION`), one discovery document type
//! and one URL type that carries the downgrade rule. The client retries network errors,
//! timeouts and 5xx answers with exponential backoff and jitter (never 4xx); the key store does
//! not retry inside a fetch, since its refresh schedule (start-up backoff, cooldown) is its
//! retry. The key store's built-in client keeps no connection pool: fetches are rare, and a
//! pool's idle timer would fire early on paused tokio time in tests.
//!
//! # Observability
//!
//! `tracing` events carry the issuer, the (sanitised) `kid`, the algorithm and the error code,
//! never the token: rejections at `debug`, key-set changes at `info`, failed refreshes at
//! `warn`, skipped JWKS keys at `debug`. [`OidcVerifier::stats`](crate::OidcVerifier::stats)
//! returns counters (accepted, cache hits/misses, rejections by code, fetches ok / failed /
//! not modified, refreshes suppressed by the cooldown or shared with a running fetch).
