//! The key ring: one active signing key, older keys kept for verification, JWKS export.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, EncodedHeader, Jwk, KeyError, KeyFamily, KeySet, KeySource,
    SigningKey, VerificationKey,
};
use agentcube_auth_core::{AuthError, KeysUnavailableReason};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::mint::Target;
use crate::{IDENTITY_TOKEN_TYPE, SANDBOX_TOKEN_TYPE};

/// A JWKS document: `{"keys": [...]}` (RFC 7517 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The document as JSON.
    #[allow(
        clippy::expect_used,
        reason = "a struct of strings always serialises; a JWKS missing keys would be a silent failure"
    )]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("invariant: a jwks of strings serialises")
    }
}

/// What [`KeyRing::replace`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyChange {
    /// The `kid` of the key that was active before the call (`None` for a verify-only ring).
    pub previous_active: Option<String>,
    /// Whether another key signs from now on: tokens minted after the call carry its `kid`,
    /// and no token cached before it is reused.
    pub rotated: bool,
    /// Whether anything changed (the active key or the published keys).
    pub changed: bool,
}

/// The active signing key with the headers of both token kinds, encoded once per key.
pub(crate) struct Signer {
    pub(crate) key: Arc<SigningKey>,
    identity_header: EncodedHeader,
    sandbox_header: EncodedHeader,
}

impl Signer {
    fn new(key: Arc<SigningKey>) -> Self {
        Self {
            identity_header: key.header(Some(IDENTITY_TOKEN_TYPE)),
            sandbox_header: key.header(Some(SANDBOX_TOKEN_TYPE)),
            key,
        }
    }

    /// The pre-encoded header for a token minted for `target`.
    pub(crate) fn header<S>(&self, target: &Target<S>) -> &EncodedHeader {
        match target {
            Target::Identity => &self.identity_header,
            Target::Sandbox(_) => &self.sandbox_header,
        }
    }
}

/// One immutable version of the ring. Readers load it without locking.
pub(crate) struct RingState {
    pub(crate) generation: u64,
    pub(crate) active: Option<Signer>,
    /// Every public key, the active one first.
    jwks: Jwks,
    jwks_json: Arc<str>,
    key_set: KeySet,
}

impl RingState {
    fn build(generation: u64, active: Option<Arc<SigningKey>>, mut keys: Vec<Jwk>) -> Self {
        // The active key first, then the others in the order they were added; no duplicates.
        if let Some(active) = &active {
            keys.retain(|k| k.kid.as_deref() != Some(active.kid()));
            keys.insert(0, active.public_jwk().clone());
        }
        let active = active.map(Signer::new);
        let key_set = KeySet::new(
            keys.iter()
                .filter_map(|k| VerificationKey::from_jwk(k).ok()),
        );
        let jwks = Jwks { keys };
        let jwks_json = Arc::from(jwks.to_json());
        Self {
            generation,
            active,
            jwks,
            jwks_json,
            key_set,
        }
    }
}

/// The Router's keys: at most one active signing key plus verification-only keys.
///
/// Rotation ([`KeyRing::rotate`]) makes a new key active and keeps the previous one for
/// verification, so tokens signed before the rotation stay valid until that key is
/// [removed](KeyRing::remove) (wait at least the longest token lifetime plus the verifiers'
/// leeway, and for remote verifiers their JWKS refresh interval, before removing it).
///
/// Reads are lock-free (an atomically swapped snapshot); changes are serialised by a mutex and
/// are rare. A ring is also a [`KeySource`], so a verifier in the same process sees rotations
/// immediately. Every key's `kid` is its RFC 7638 thumbprint (unless the signing key was given
/// another with [`SigningKey::with_kid`]; keys added from a JWKS keep the `kid` they were
/// published with).
///
/// A Router that reads its keys from files (current, next, previous) sets the whole ring at
/// once with [`KeyRing::replace`]: the next key is published before it signs, and the previous
/// key stays published after it stops signing.
///
/// Any [`SigningKey`] can be the active key, but verifiers accept only the algorithms of
/// [`VerifierConfig::DEFAULT_ALGORITHMS`](crate::VerifierConfig::DEFAULT_ALGORITHMS) (`EdDSA`,
/// `ES256`, `RS256`) unless configured otherwise: sign with one of those.
pub struct KeyRing {
    state: ArcSwap<RingState>,
    write: Mutex<()>,
}

impl KeyRing {
    /// A ring whose active key is `key`.
    pub fn new(key: SigningKey) -> Self {
        Self::from_state(RingState::build(0, Some(Arc::new(key)), Vec::new()))
    }

    /// A ring with a freshly generated Ed25519 key (an ephemeral Router identity).
    ///
    /// # Errors
    /// [`KeyError::Generation`].
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::new(SigningKey::generate(Algorithm::EdDSA)?))
    }

    /// A ring whose active key is read from PEM (see [`SigningKey::from_pem`]).
    ///
    /// # Errors
    /// [`KeyError`] from loading the key.
    pub fn from_private_pem(pem_text: &str) -> Result<Self, KeyError> {
        Ok(Self::new(SigningKey::from_pem(pem_text)?))
    }

    /// A verify-only ring holding one public key read from PEM (see
    /// [`Jwk::from_public_pem`]): the workload manager's or a sandbox's view of the Router's
    /// `public.pem`.
    ///
    /// # Errors
    /// [`KeyError`] from reading the key.
    pub fn from_public_pem(pem_text: &str) -> Result<Self, KeyError> {
        Self::verify_only([Jwk::from_public_pem(pem_text)?])
    }

    /// A verify-only ring of public keys (for example the `keys` of a [`Jwks`]).
    ///
    /// Each key must be usable for verification (an unusable key fails the whole call: this is
    /// static configuration, so it should be right). A key without `kid` gets its thumbprint; a
    /// key without `alg` is pinned to its family's algorithm (`RS256`, `ES256`, `ES384`, `ES512` or `EdDSA`).
    ///
    /// # Errors
    /// [`KeyError::Unusable`] for a key that cannot verify.
    pub fn verify_only(keys: impl IntoIterator<Item = Jwk>) -> Result<Self, KeyError> {
        let keys = keys
            .into_iter()
            .map(normalise_public)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_state(RingState::build(0, None, keys)))
    }

    /// A ring with no keys: not ready, every verification fails with `keys_unavailable`.
    pub fn empty() -> Self {
        Self::from_state(RingState::build(0, None, Vec::new()))
    }

    fn from_state(state: RingState) -> Self {
        Self {
            state: ArcSwap::from_pointee(state),
            write: Mutex::new(()),
        }
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<RingState>> {
        self.state.load()
    }

    /// Replaces the state with what `f` builds from it; `Ok(None)` leaves it unchanged.
    fn update(
        &self,
        f: impl FnOnce(&RingState) -> Result<Option<RingState>, KeyError>,
    ) -> Result<(), KeyError> {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.state.load_full();
        if let Some(next) = f(&current)? {
            self.state.store(Arc::new(next));
        }
        Ok(())
    }

    /// The active signing key, if the ring has one.
    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.snapshot().active.as_ref().map(|a| Arc::clone(&a.key))
    }

    fn active_kid(state: &RingState) -> Option<&str> {
        state.active.as_ref().map(|a| a.key.kid())
    }

    /// Makes `key` the active signing key. The previous active key stays in the ring for
    /// verification. Returns the previous active key's `kid`.
    ///
    /// Tokens cached by a [`TokenMinter`](crate::TokenMinter) are not reused after a rotation.
    pub fn rotate(&self, key: SigningKey) -> Option<String> {
        let mut previous = None;
        // `update` only fails when the closure does, and this one does not.
        let _ = self.update(|state| {
            previous = Self::active_kid(state).map(str::to_owned);
            // `build` drops an older copy of the new key.
            Ok(Some(RingState::build(
                state.generation + 1,
                Some(Arc::new(key)),
                state.jwks.keys.clone(),
            )))
        });
        previous
    }

    /// Sets the whole ring in one step: `active` signs, and the ring publishes (and verifies
    /// with) exactly `active` and `published`; every other key is dropped. This is what a Router
    /// that reloads its key files calls: a key in `published` that is not active is "published
    /// but not signing", the state of the next key before a rotation (so verifiers learn it
    /// before any token carries it) and of the previous key after one (so tokens it signed stay
    /// valid until they expire).
    ///
    /// When `active` has the `kid` of the current active key, the current key is kept (tokens
    /// cached by a [`TokenMinter`](crate::TokenMinter) stay reusable); otherwise it replaces it,
    /// and no cached token signed by the old key is handed out again. Keys in `published` with
    /// the active key's `kid`, or a `kid` seen earlier in `published`, are skipped. A call that
    /// changes nothing leaves the ring (and its [`generation`](Self::generation)) as it is.
    ///
    /// # Errors
    /// [`KeyError::Unusable`] for a published key that cannot verify; the ring is then
    /// unchanged.
    pub fn replace(
        &self,
        active: SigningKey,
        published: impl IntoIterator<Item = Jwk>,
    ) -> Result<KeyChange, KeyError> {
        let mut others: Vec<Jwk> = Vec::new();
        for jwk in published {
            let jwk = normalise_public(jwk)?;
            if jwk.kid.as_deref() != Some(active.kid()) && !others.iter().any(|k| k.kid == jwk.kid)
            {
                others.push(jwk);
            }
        }
        let mut change = KeyChange {
            previous_active: None,
            rotated: false,
            changed: false,
        };
        self.update(|state| {
            change.previous_active = Self::active_kid(state).map(str::to_owned);
            let keep = state
                .active
                .as_ref()
                .filter(|current| current.key.kid() == active.kid())
                .map(|current| Arc::clone(&current.key));
            change.rotated = keep.is_none();
            let unchanged = !change.rotated
                && state.jwks.keys.len() == others.len() + 1
                && state.jwks.keys.iter().skip(1).eq(others.iter());
            if unchanged {
                return Ok(None);
            }
            change.changed = true;
            let key = keep.unwrap_or_else(|| Arc::new(active));
            Ok(Some(RingState::build(
                state.generation + 1,
                Some(key),
                others,
            )))
        })?;
        Ok(change)
    }

    /// Adds a verification-only public key (for example the Router's previous key, or a key of
    /// another Router replica). A key with the same `kid` is replaced. Returns the key's `kid`.
    ///
    /// # Errors
    /// [`KeyError::Unusable`] for a key that cannot verify.
    pub fn add_verification_key(&self, jwk: Jwk) -> Result<String, KeyError> {
        let jwk = normalise_public(jwk)?;
        #[allow(
            clippy::expect_used,
            reason = "normalise_public (Jwk::for_signing_with) gives every key a kid"
        )]
        let kid = jwk
            .kid
            .clone()
            .expect("invariant: a normalised key has a kid");
        self.update(|state| {
            // The active key is already there.
            if Self::active_kid(state) == Some(kid.as_str()) {
                return Ok(None);
            }
            let mut keys = state.jwks.keys.clone();
            keys.retain(|k| k.kid.as_deref() != Some(kid.as_str()));
            keys.push(jwk);
            Ok(Some(RingState::build(
                state.generation + 1,
                state.active.as_ref().map(|a| Arc::clone(&a.key)),
                keys,
            )))
        })?;
        Ok(kid)
    }

    /// Removes the verification key `kid`. Tokens it signed are rejected from now on
    /// (`unknown_kid`). Returns whether a key was removed.
    ///
    /// # Errors
    /// [`KeyError::ActiveKey`] when `kid` is the active signing key: rotate first.
    pub fn remove(&self, kid: &str) -> Result<bool, KeyError> {
        let mut removed = false;
        self.update(|state| {
            if Self::active_kid(state) == Some(kid) {
                return Err(KeyError::ActiveKey);
            }
            let mut keys = state.jwks.keys.clone();
            let before = keys.len();
            keys.retain(|k| k.kid.as_deref() != Some(kid));
            removed = keys.len() != before;
            Ok(removed.then(|| {
                let active = state.active.as_ref().map(|a| Arc::clone(&a.key));
                RingState::build(state.generation + 1, active, keys)
            }))
        })?;
        Ok(removed)
    }

    /// The `kid`s of every key, the active one first.
    pub fn kids(&self) -> Vec<String> {
        self.snapshot()
            .jwks
            .keys
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect()
    }

    /// The number of keys (signing and verification).
    pub fn len(&self) -> usize {
        self.snapshot().jwks.keys.len()
    }

    /// Whether the ring holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A counter that changes whenever the active key or the key list changes.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// The public keys as a JWKS document, the active key first.
    pub fn jwks(&self) -> Jwks {
        self.snapshot().jwks.clone()
    }

    /// The JWKS document as JSON, serialised once per change (serve it as
    /// `application/jwk-set+json` or `application/json`).
    pub fn jwks_json(&self) -> Arc<str> {
        self.snapshot().jwks_json.clone()
    }

    /// The algorithms the ring's keys verify (each key is pinned to one). Intersect a
    /// verifier's allowlist with this to accept exactly what the keys support:
    /// `config.algorithms = ring.algorithms()`.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.snapshot()
            .key_set
            .keys()
            .iter()
            .fold(AlgorithmSet::EMPTY, |set, k| {
                k.algorithms().iter().fold(set, AlgorithmSet::with)
            })
    }

    /// A snapshot of the verification keys (later changes to the ring do not affect it).
    pub fn key_set(&self) -> KeySet {
        self.snapshot().key_set.clone()
    }
}

impl Default for KeyRing {
    fn default() -> Self {
        Self::empty()
    }
}

impl KeySource for KeyRing {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        let state = self.snapshot();
        std::future::ready(if state.key_set.is_empty() {
            Err(AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded))
        } else {
            state.key_set.find(kid, alg).cloned()
        })
    }

    fn is_ready(&self) -> bool {
        !self.snapshot().key_set.is_empty()
    }
}

/// Shows `kid`s and the generation; never key material.
impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.snapshot();
        f.debug_struct("KeyRing")
            .field("active", &Self::active_kid(&state))
            .field(
                "kids",
                &state
                    .jwks
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .field("generation", &state.generation)
            .finish()
    }
}

fn normalise_public(jwk: Jwk) -> Result<Jwk, KeyError> {
    // Reject anything that is not a usable signing key before filling in defaults.
    let parsed = VerificationKey::from_jwk(&jwk).map_err(KeyError::Unusable)?;
    let alg = match &jwk.alg {
        Some(name) => Algorithm::from_name(name).ok_or(KeyError::UnsupportedKeyType)?,
        None => match parsed.family() {
            KeyFamily::Rsa => Algorithm::RS256,
            KeyFamily::P256 => Algorithm::ES256,
            KeyFamily::P384 => Algorithm::ES384,
            KeyFamily::P521 => Algorithm::ES512,
            KeyFamily::Ed25519 => Algorithm::EdDSA,
            _ => return Err(KeyError::UnsupportedKeyType),
        },
    };
    // Keeps a published kid; a key without one gets its thumbprint.
    jwk.for_signing_with(alg).map_err(KeyError::Unusable)
}

#[cfg(test)]
mod tests {
    use agentcube_auth_core::Principal;

    use super::*;
    use crate::TokenMinter;

    fn ed25519() -> SigningKey {
        SigningKey::generate(Algorithm::EdDSA).unwrap()
    }

    #[test]
    fn replace_publishes_before_signing_and_keeps_the_previous_key_published() {
        let current = ed25519();
        let current_pem = current.to_pkcs8_pem().unwrap();
        let current_kid = current.kid().to_owned();
        let ring = Arc::new(KeyRing::new(current));
        let minter = TokenMinter::new(Arc::clone(&ring));
        let alice = Principal::builder("https://idp", "alice").build();
        let cached = minter.identity_token(&alice).unwrap();

        // Step 1: the next key is published, the current one still signs.
        let next = ed25519();
        let next_kid = next.kid().to_owned();
        let next_jwk = next.public_jwk().clone();
        let reload = || SigningKey::from_pem(current_pem.expose_secret()).unwrap();
        let change = ring.replace(reload(), [next_jwk.clone()]).unwrap();
        assert_eq!(
            change,
            KeyChange {
                previous_active: Some(current_kid.clone()),
                rotated: false,
                changed: true,
            }
        );
        assert_eq!(ring.kids(), [current_kid.as_str(), next_kid.as_str()]);
        // The same key read again is kept: cached tokens are still reused.
        assert!(minter.identity_token(&alice).unwrap().same_token(&cached));
        // Reading the same files again changes nothing.
        let generation = ring.generation();
        let change = ring.replace(reload(), [next_jwk.clone()]).unwrap();
        assert!(!change.changed && !change.rotated);
        assert_eq!(ring.generation(), generation);

        // Step 2: the swap. The next key signs, the old one stays published.
        let current_jwk = ring.active().unwrap().public_jwk().clone();
        let change = ring.replace(next, [current_jwk]).unwrap();
        assert!(change.rotated && change.changed);
        assert_eq!(
            change.previous_active.as_deref(),
            Some(current_kid.as_str())
        );
        assert_eq!(ring.kids(), [next_kid.as_str(), current_kid.as_str()]);
        assert!(ring.generation() > generation);
        let after = minter.identity_token(&alice).unwrap();
        assert!(
            !after.same_token(&cached),
            "no token of the old key is reused"
        );
        let header = after.as_str().split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], next_kid.as_str());

        // Step 3: the previous key is dropped; duplicates of the active key are skipped.
        let active = ring.active().unwrap();
        let same = SigningKey::from_pem(active.to_pkcs8_pem().unwrap().expose_secret()).unwrap();
        let change = ring
            .replace(same, [active.public_jwk().clone(), next_jwk])
            .unwrap();
        assert!(change.changed && !change.rotated);
        assert_eq!(ring.kids(), [next_kid]);
        assert!(minter.identity_token(&alice).unwrap().same_token(&after));
    }

    #[test]
    fn replace_with_an_unusable_key_changes_nothing() {
        let ring = KeyRing::new(ed25519());
        let (generation, kids) = (ring.generation(), ring.kids());
        let mut enc = ed25519().public_jwk().clone();
        enc.key_use = Some("enc".into());
        assert!(matches!(
            ring.replace(ed25519(), [enc]),
            Err(KeyError::Unusable(_))
        ));
        assert_eq!((ring.generation(), ring.kids()), (generation, kids));
    }

    #[test]
    fn replace_gives_a_verify_only_ring_its_signing_key() {
        let ring = KeyRing::empty();
        let key = ed25519();
        let kid = key.kid().to_owned();
        let change = ring.replace(key, []).unwrap();
        assert_eq!(change.previous_active, None);
        assert!(change.rotated && change.changed);
        assert_eq!(ring.kids(), [kid]);
    }
}
