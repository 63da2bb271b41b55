//! The session record: what the store keeps for a sandbox session, with its owner.

use std::borrow::Cow;

use agentcube_auth_core::{Code, Rejection};
use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::INTERNAL_ERROR_MESSAGE;
use crate::metadata::OwnerMetadata;
use crate::owner::OwnerId;
use crate::policy::AuthMode;

/// A sandbox session as kept in the session store: the `SandboxInfo` JSON that existing
/// deployments store (camelCase fields).
///
/// # Owner
///
/// The owner field is private and set only by a constructor, so a record cannot be built
/// without deciding about its owner:
///
/// - [`SessionRecord::owned`] takes an [`OwnerId`] — the normal case.
/// - [`SessionRecord::unowned_auth_disabled`] builds an ownerless record, and says so in its
///   name; only a deployment that runs without authentication should call it.
/// - [`SessionRecord::new`] decides from the deployment's [`AuthMode`]: with authentication on
///   and no owner it fails with [`OwnerRequired`] instead of creating a sandbox nobody can use
///   (which is what happens when a request that lacks the identity header is served anyway).
///
/// There is no `Default` and no setter that clears the owner, and a struct literal does not
/// compile outside this crate:
///
/// ```compile_fail
/// let record = agentcube_rlac::SessionRecord::default();
/// ```
///
/// ```compile_fail
/// let record = agentcube_rlac::SessionRecord {
///     session_id: "s-1".into(),
///     sandbox_id: String::new(),
///     sandbox_name: String::new(),
///     kind: String::new(),
///     namespace: String::new(),
///     entry_points: Vec::new(),
/// };
/// ```
///
/// A record *read* from the store may still have no owner (`owner()` is `None`: the field is absent, `null` or `""`); the access
/// policy denies such a record with [`Reason::NoOwnerRecord`](crate::Reason::NoOwnerRecord).
///
/// # JSON
///
/// Writes `sessionId`, `sandboxId`, `sandboxName`, `kind`, `namespace`, `entryPoints` and,
/// when there is an owner, `ownerId`. Reads the same, and also the older or alternative
/// spellings found in existing stores: `ownerID` (before it was renamed), `name` for `sandboxName` and
/// `sandboxNamespace` for `namespace`. Missing fields read as empty and `"entryPoints": null`
/// as no entry points. Every other field (`createdAt`, `expiresAt`, `status`, …) is kept in
/// [`SessionRecord::extra`] and written back unchanged, so a read-modify-write by this crate
/// does not drop what another WorkloadManager's garbage collector sharing the store needs. A field of the
/// wrong JSON type — `"ownerId": 42` — is an error, never "no owner".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The session id (the `x-agentcube-session-id` header; the store key is `session:<id>`).
    #[serde(default)]
    pub session_id: String,
    /// The sandbox id.
    #[serde(default)]
    pub sandbox_id: String,
    /// The sandbox (object) name.
    #[serde(default, alias = "name")]
    pub sandbox_name: String,
    /// The kind: `AgentRuntime` or `CodeInterpreter`.
    #[serde(default)]
    pub kind: String,
    /// The Kubernetes namespace of the sandbox.
    #[serde(default, alias = "sandboxNamespace")]
    pub namespace: String,
    /// Where the sandbox listens.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub entry_points: Vec<EntryPoint>,
    #[serde(
        rename = "ownerId",
        alias = "ownerID",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    owner: Option<OwnerId>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A sandbox entry point (`{"path", "protocol", "endpoint"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryPoint {
    /// The path prefix served by this entry point.
    #[serde(default)]
    pub path: String,
    /// The protocol, such as `HTTP`.
    #[serde(default)]
    pub protocol: String,
    /// The `host:port` (or URL) to proxy to.
    #[serde(default)]
    pub endpoint: String,
}

/// JSON keys that name a typed field of [`SessionRecord`] (including read aliases); they cannot
/// be set through [`SessionRecord::insert_extra`].
const RESERVED_KEYS: [&str; 10] = [
    "sessionId",
    "sandboxId",
    "sandboxName",
    "name",
    "kind",
    "namespace",
    "sandboxNamespace",
    "entryPoints",
    "ownerId",
    "ownerID",
];

impl SessionRecord {
    /// A record for a session owned by `owner`.
    pub fn owned(owner: OwnerId, session_id: impl Into<String>) -> Self {
        Self::with_owner(Some(owner), session_id.into())
    }

    /// A record without an owner, for a deployment that turned authentication off.
    ///
    /// With authentication on, the access policy denies everyone but admins access to such a
    /// session; use [`SessionRecord::owned`] or [`SessionRecord::new`] there.
    pub fn unowned_auth_disabled(session_id: impl Into<String>) -> Self {
        Self::with_owner(None, session_id.into())
    }

    /// A record for a session created under `auth`, by `owner` if the request carried a verified
    /// identity.
    ///
    /// # Errors
    /// [`OwnerRequired`] when `auth` is [`AuthMode::Enabled`] and `owner` is `None`: refuse the
    /// request (401) instead of creating an ownerless sandbox.
    pub fn new(
        auth: AuthMode,
        owner: Option<OwnerId>,
        session_id: impl Into<String>,
    ) -> Result<Self, OwnerRequired> {
        match (auth, owner) {
            (_, Some(owner)) => Ok(Self::owned(owner, session_id)),
            (AuthMode::Disabled, None) => Ok(Self::unowned_auth_disabled(session_id)),
            (AuthMode::Enabled, None) => Err(OwnerRequired),
        }
    }

    fn with_owner(owner: Option<OwnerId>, session_id: String) -> Self {
        Self {
            session_id,
            sandbox_id: String::new(),
            sandbox_name: String::new(),
            kind: String::new(),
            namespace: String::new(),
            entry_points: Vec::new(),
            owner,
            extra: Map::new(),
        }
    }

    /// The owner, or `None` if the record has none.
    pub fn owner(&self) -> Option<&OwnerId> {
        self.owner.as_ref()
    }

    /// The annotation and label to stamp on the sandbox object, or `None` without an owner.
    pub fn owner_metadata(&self) -> Option<OwnerMetadata> {
        self.owner.clone().map(OwnerMetadata::new)
    }

    /// The JSON fields this type does not model, kept for round trips.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// Sets a field this type does not model (e.g. `createdAt`), returning the previous value.
    ///
    /// # Errors
    /// [`ReservedKey`] if `key` names a typed field or one of its aliases (`ownerId`,
    /// `ownerID`, `sessionId`, `name`, …): the owner can only be set by a constructor.
    pub fn insert_extra(
        &mut self,
        key: impl Into<String>,
        value: Value,
    ) -> Result<Option<Value>, ReservedKey> {
        let key = key.into();
        if RESERVED_KEYS.contains(&key.as_str()) {
            return Err(ReservedKey);
        }
        Ok(self.extra.insert(key, value))
    }

    /// Parses a record from JSON (e.g. a store value).
    ///
    /// # Errors
    /// The JSON error if the value is not a JSON object of this shape.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// Serializes the record to JSON.
    ///
    /// # Errors
    /// Only if an extra field cannot be serialized (it can: `serde_json::Value` always can), so
    /// in practice never.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EntryPoint>, D::Error> {
    Ok(Option::<Vec<EntryPoint>>::deserialize(d)?.unwrap_or_default())
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OwnerId>, D::Error> {
    // Go writes a missing owner as an absent field (omitempty); accept `null` and `""` too.
    Ok(Option::<String>::deserialize(d)?.and_then(|raw| OwnerId::new(raw).ok()))
}

/// Authentication is on but no verified owner was given: a session must not be created.
///
/// The WorkloadManager answers 401 (the identity header is missing); see [`SessionRecord::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an owner is required: authentication is on and the request carries no verified identity")]
pub struct OwnerRequired;

impl OwnerRequired {
    const CODE: Code = Code::new("owner_required");

    /// The stable machine code: `owner_required`.
    pub const fn code(&self) -> Code {
        Self::CODE
    }
}

/// 401 (the caller did not prove who it is) with the error's message; no `WWW-Authenticate`
/// challenge, since this crate does not know how the caller authenticates (a WorkloadManager
/// reads an identity header, not an `Authorization` bearer token).
impl Rejection for OwnerRequired {
    fn code(&self) -> Code {
        OwnerRequired::code(self)
    }

    fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Owned(self.to_string())
    }
}

/// The key names a typed field of [`SessionRecord`]; see [`SessionRecord::insert_extra`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key is reserved for a typed session record field")]
pub struct ReservedKey;

impl ReservedKey {
    const CODE: Code = Code::new("reserved_key");

    /// The stable machine code: `reserved_key`.
    pub const fn code(&self) -> Code {
        Self::CODE
    }
}

/// 500 `internal server error`: the service chose the key (a service that copies keys from a
/// request into [`SessionRecord::extra`] answers 400 itself).
impl Rejection for ReservedKey {
    fn code(&self) -> Code {
        ReservedKey::code(self)
    }

    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(INTERNAL_ERROR_MESSAGE)
    }
}
