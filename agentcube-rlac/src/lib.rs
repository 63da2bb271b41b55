#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The attribute macro for implementing [`OwnerStore`] (re-exported from `async-trait`, so
/// implementers need no dependency of their own): `#[agentcube_rlac::async_trait]`.
pub use async_trait::async_trait;

mod metadata;
pub mod metrics;
mod owner;
mod policy;
mod record;
mod store;

pub use metadata::{OWNER_ANNOTATION, OWNER_HASH_LABEL, OwnerMetadata, OwnerMetadataError};
pub use owner::{OwnerHash, OwnerId, OwnerIdError, OwnerIdScheme};
pub use policy::{
    AccessDenied, AccessPolicy, AccessPolicyExt, AccessRequest, Action, AllOf, AnyOf, AuthMode,
    CustomReason, DEFAULT_ADMIN_ROLE, Decision, Effect, OwnerPolicy, PolicyFn, Reason, audit,
    policy_fn,
};
pub use record::{EntryPoint, OwnerRequired, ReservedKey, SessionRecord};
pub use store::{BoxError, InMemoryOwnerStore, OwnerStore, StoreError};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisOwnerStore, RedisStoreConfig};

/// The public message of every 500 this crate's errors turn into; the details stay in the logs.
const INTERNAL_ERROR_MESSAGE: &str = "internal server error";
