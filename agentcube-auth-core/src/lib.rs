#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod bearer;
mod claims;
mod clock;
pub mod digest;
mod error;
mod hierarchy;
#[cfg(feature = "http")]
pub mod http;
pub mod jose;
mod keycloak_roles;
pub mod manual;
mod mapper;
mod principal;
mod rejection;
mod requirement;
mod revocation;
mod role;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod token_cache;
mod verifier;

pub use claims::{Audience, Claims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    AuthError, ErrorCode, KeysUnavailableReason, MalformedReason, TypeLocation, Untrusted,
};
pub use hierarchy::{HierarchyError, RoleHierarchy};
pub use mapper::{AndThen, ClaimMapper, ClaimPathMapper, KeycloakClaimMapper, StandardClaims};
pub use principal::{Principal, PrincipalBuilder};
pub use rejection::{Code, Rejection, ServiceError};
pub use requirement::Requirement;
pub use revocation::{
    MemoryRevocationSet, Revocation, RevocationError, RevocationKey, RevocationKind,
    RevocationListener, RevocationProbe, RevocationSet, RevocationTarget, RevokeFuture,
};
pub use role::{Role, RoleSet};
pub use verifier::TokenVerifier;
