//! The minting cache: reuse a signed token for the same principal and audience until shortly
//! before it expires.
//!
//! A lookup hashes a few borrowed strings with a keyed hasher, takes a shard's read lock and
//! compares the stored principal's fields with the caller's: no allocation, no signature. The
//! 64-bit hash only selects the slot; equality of every field that goes into the token is
//! checked on every hit, so a hash collision can only cause a miss, never a wrong token.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

use agentcube_auth_core::Principal;

use crate::TokenKind;
use crate::keys::SigningKey;
use crate::mint::MintedToken;

const SHARDS: usize = 16;

/// What a cached token was minted for.
pub(crate) struct Entry {
    pub(crate) kind: TokenKind,
    pub(crate) principal: Principal,
    pub(crate) session: Option<Box<str>>,
    /// The key that signed it: after a rotation the entry is stale.
    pub(crate) key: Arc<SigningKey>,
    /// Reuse while `now < refresh_at`.
    pub(crate) refresh_at: i64,
    pub(crate) token: MintedToken,
}

impl Entry {
    fn matches(
        &self,
        kind: TokenKind,
        principal: &Principal,
        session: Option<&str>,
        compare_roles: bool,
    ) -> bool {
        self.kind == kind
            && self.principal.subject() == principal.subject()
            && self.principal.issuer() == principal.issuer()
            && self.principal.email() == principal.email()
            && self.session.as_deref() == session
            && (!compare_roles || self.principal.roles() == principal.roles())
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Arc<Entry>, BuildHasherDefault<PassThrough>>;

pub(crate) struct MintCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
    compare_roles: bool,
}

impl MintCache {
    pub(crate) fn new(capacity: usize, compare_roles: bool) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            compare_roles,
        }
    }

    pub(crate) fn hash(
        &self,
        kind: TokenKind,
        principal: &Principal,
        session: Option<&str>,
    ) -> u64 {
        self.hasher.hash_one((
            kind,
            principal.subject(),
            principal.issuer(),
            principal.email(),
            session,
        ))
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<Shard>> {
        // The top bits pick the shard; the map itself uses all of them.
        self.shards.get((hash >> 60) as usize % SHARDS)
    }

    /// A reusable token, if one is cached.
    pub(crate) fn get(
        &self,
        hash: u64,
        kind: TokenKind,
        principal: &Principal,
        session: Option<&str>,
        active: &Arc<SigningKey>,
        now: i64,
    ) -> Option<MintedToken> {
        let shard = self
            .shard(hash)?
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = shard.get(&hash)?;
        (now < entry.refresh_at
            && Arc::ptr_eq(&entry.key, active)
            && entry.matches(kind, principal, session, self.compare_roles))
        .then(|| entry.token.clone())
    }

    pub(crate) fn insert(&self, hash: u64, entry: Entry, now: i64) {
        let Some(shard) = self.shard(hash) else {
            return;
        };
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.retain(|_, e| now < e.refresh_at);
            if shard.len() >= self.per_shard {
                // Full of live entries: start the shard afresh rather than grow without bound.
                // The cost is re-signing for the evicted principals, never a wrong token.
                shard.clear();
            }
        }
        shard.insert(hash, Arc::new(entry));
    }

    /// The number of cached tokens (live or not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
