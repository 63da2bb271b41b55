//! Owner metadata stamped on the sandbox object (Kubernetes annotation and label).

use std::borrow::Cow;
use std::collections::BTreeMap;

use agentcube_auth_core::{Code, Rejection};
use http::StatusCode;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::INTERNAL_ERROR_MESSAGE;
use crate::owner::{OwnerHash, OwnerId, OwnerIdError};

/// The annotation that holds the owner id verbatim.
pub const OWNER_ANNOTATION: &str = "agentcube.io/owner";

/// The label that holds [`OwnerHash`] of the owner id (a label, unlike an annotation, can be
/// selected on, but its value is limited to 63 characters).
pub const OWNER_HASH_LABEL: &str = "agentcube.io/owner-hash";

/// The owner annotation and hash label for one owner, as the WorkloadManager stamps them on the
/// `metadata` of the Sandbox (or SandboxClaim) object it creates.
///
/// Serializes as `{"annotations": {"agentcube.io/owner": …}, "labels": {"agentcube.io/owner-hash": …}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerMetadata {
    owner: OwnerId,
    hash: OwnerHash,
}

impl OwnerMetadata {
    /// The metadata for `owner` (computes the hash once).
    pub fn new(owner: OwnerId) -> Self {
        let hash = OwnerHash::of(&owner);
        Self { owner, hash }
    }

    /// The owner.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// The hash label value.
    pub fn hash(&self) -> &OwnerHash {
        &self.hash
    }

    /// The annotations to set: `[(OWNER_ANNOTATION, owner id)]`.
    pub fn annotations(&self) -> [(&'static str, &str); 1] {
        [(OWNER_ANNOTATION, self.owner.as_str())]
    }

    /// The labels to set: `[(OWNER_HASH_LABEL, hash)]`.
    pub fn labels(&self) -> [(&'static str, &str); 1] {
        [(OWNER_HASH_LABEL, self.hash.as_str())]
    }

    /// Adds the annotation and the label to an object's maps (`BTreeMap<String, String>` as in
    /// `k8s-openapi`'s `ObjectMeta`, or any other map of strings), replacing earlier values.
    pub fn apply_to<A, L>(&self, annotations: &mut A, labels: &mut L)
    where
        A: Extend<(String, String)>,
        L: Extend<(String, String)>,
    {
        annotations.extend(
            self.annotations()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        labels.extend(self.labels().map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    /// Reads the owner back from an object's annotation and label values.
    ///
    /// `Ok(None)` when neither is present (an ownerless object — the access policy denies it).
    ///
    /// # Errors
    /// [`OwnerMetadataError`] when the annotation is empty, or present without the label or with
    /// a label that is not its hash, or the label is present without the annotation: metadata
    /// that was edited by hand or written by something else is not trusted.
    pub fn read(
        annotation: Option<&str>,
        label: Option<&str>,
    ) -> Result<Option<OwnerId>, OwnerMetadataError> {
        match (annotation, label) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(OwnerMetadataError::LabelWithoutAnnotation),
            (Some(owner), label) => {
                let owner = OwnerId::new(owner).map_err(OwnerMetadataError::InvalidOwner)?;
                match label {
                    Some(label) if label == OwnerHash::of(&owner).as_str() => Ok(Some(owner)),
                    Some(_) => Err(OwnerMetadataError::HashMismatch),
                    None => Err(OwnerMetadataError::MissingLabel),
                }
            }
        }
    }

    /// [`OwnerMetadata::read`] from an object's annotation and label maps.
    ///
    /// # Errors
    /// As [`OwnerMetadata::read`].
    pub fn read_maps(
        annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<OwnerId>, OwnerMetadataError> {
        Self::read(
            annotations.get(OWNER_ANNOTATION).map(String::as_str),
            labels.get(OWNER_HASH_LABEL).map(String::as_str),
        )
    }
}

impl From<OwnerId> for OwnerMetadata {
    fn from(owner: OwnerId) -> Self {
        Self::new(owner)
    }
}

impl Serialize for OwnerMetadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let annotations: BTreeMap<&str, &str> = self.annotations().into_iter().collect();
        let labels: BTreeMap<&str, &str> = self.labels().into_iter().collect();
        let mut s = serializer.serialize_struct("OwnerMetadata", 2)?;
        s.serialize_field("annotations", &annotations)?;
        s.serialize_field("labels", &labels)?;
        s.end()
    }
}

/// Why the owner metadata on an object cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerMetadataError {
    /// The owner annotation holds no valid owner id.
    #[error("invalid owner annotation: {0}")]
    InvalidOwner(OwnerIdError),
    /// The owner annotation is present but the hash label is not.
    #[error("owner annotation without owner-hash label")]
    MissingLabel,
    /// The hash label is present but the owner annotation is not.
    #[error("owner-hash label without owner annotation")]
    LabelWithoutAnnotation,
    /// The hash label is not the hash of the owner annotation.
    #[error("owner-hash label does not match the owner annotation")]
    HashMismatch,
}

impl OwnerMetadataError {
    const INVALID_OWNER: Code = Code::new("invalid_owner_annotation");
    const MISSING_LABEL: Code = Code::new("missing_owner_hash_label");
    const LABEL_WITHOUT_ANNOTATION: Code = Code::new("owner_hash_label_without_annotation");
    const HASH_MISMATCH: Code = Code::new("owner_hash_mismatch");

    /// The stable machine code: `invalid_owner_annotation`, `missing_owner_hash_label`,
    /// `owner_hash_label_without_annotation` or `owner_hash_mismatch`.
    pub const fn code(&self) -> Code {
        match self {
            Self::InvalidOwner(_) => Self::INVALID_OWNER,
            Self::MissingLabel => Self::MISSING_LABEL,
            Self::LabelWithoutAnnotation => Self::LABEL_WITHOUT_ANNOTATION,
            Self::HashMismatch => Self::HASH_MISMATCH,
        }
    }
}

/// 500 `internal server error`: the object's owner cannot be trusted, so the service can decide
/// nothing about it (the details stay in the logs). The code says which inconsistency it was.
impl Rejection for OwnerMetadataError {
    fn code(&self) -> Code {
        OwnerMetadataError::code(self)
    }

    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(INTERNAL_ERROR_MESSAGE)
    }
}
