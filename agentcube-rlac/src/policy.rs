//! The access policy: who may do what to a sandbox session, and why.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use agentcube_auth_core::audit::{AuditDecision, AuditEvent, AuditResource};
use agentcube_auth_core::{Code, Principal, Rejection, Role, RoleHierarchy};
use http::StatusCode;

use crate::owner::{OwnerId, OwnerIdScheme};
use crate::record::SessionRecord;

/// Whether the deployment authenticates callers at all.
///
/// A deployment without authentication allows everything; this makes that choice explicit and
/// visible in audit logs ([`Reason::AuthDisabled`]) instead of an accident of a missing
/// principal (which the policy denies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// Callers are authenticated; sessions have owners. The default.
    #[default]
    Enabled,
    /// No authentication: every request is allowed and sessions may be ownerless.
    Disabled,
}

/// What a caller wants to do with a sandbox session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Create a new session. Needs only the route's role, which is checked before the policy;
    /// the policy allows any authenticated caller.
    Create,
    /// Invoke the sandbox (proxy a request to it).
    Invoke,
    /// Read the session record.
    Read,
    /// Delete the session.
    Delete,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [Self::Create, Self::Invoke, Self::Read, Self::Delete];

    const CREATE: Code = Code::new("create");
    const INVOKE: Code = Code::new("invoke");
    const READ: Code = Code::new("read");
    const DELETE: Code = Code::new("delete");

    /// The stable lowercase name: `create`, `invoke`, `read`, `delete`.
    pub const fn code(self) -> Code {
        match self {
            Self::Create => Self::CREATE,
            Self::Invoke => Self::INVOKE,
            Self::Read => Self::READ,
            Self::Delete => Self::DELETE,
        }
    }

    /// Whether the action is on an existing session, so ownership applies (all but `Create`).
    pub const fn needs_ownership(self) -> bool {
        !matches!(self, Self::Create)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code().as_str())
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request must be refused.
    Deny,
}

impl Effect {
    const ALLOW: Code = Code::new("allow");
    const DENY: Code = Code::new("deny");

    /// `allow` or `deny`.
    pub const fn code(self) -> Code {
        match self {
            Self::Allow => Self::ALLOW,
            Self::Deny => Self::DENY,
        }
    }
}

/// Why a decision was made: a stable code for logs and metrics, and a message.
///
/// Each reason has a fixed [`Effect`], so a decision can never say "deny because owner". The
/// deny messages are the response bodies clients already match on; the status is that of the
/// [`AccessDenied`] error a denial turns into.
///
/// | reason | code | effect | message | status |
/// |---|---|---|---|---|
/// | [`Owner`](Self::Owner) | `owner` | allow | `caller owns the session` | |
/// | [`AdminBypass`](Self::AdminBypass) | `admin_bypass` | allow | `caller holds the admin role` | |
/// | [`Authenticated`](Self::Authenticated) | `authenticated` | allow | `any authenticated caller may create a session` | |
/// | [`AuthDisabled`](Self::AuthDisabled) | `auth_disabled` | allow | `authentication is disabled` | |
/// | [`Unauthenticated`](Self::Unauthenticated) | `unauthenticated` | deny | `authentication required` | 401 |
/// | [`NoOwnerRecord`](Self::NoOwnerRecord) | `no_owner_record` | deny | `sandbox has no owner record` | 403 |
/// | [`NotOwner`](Self::NotOwner) | `not_owner` | deny | `you do not own this sandbox` | 403 |
/// | [`Custom`](Self::Custom) | yours | yours | yours | 403 if deny |
///
/// Deliberately not `#[non_exhaustive]` (as cedar does for authorization results): code that
/// maps reasons to responses should stop compiling when a reason is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The caller owns the session.
    Owner,
    /// The caller holds the configured admin role (directly or through the role hierarchy).
    AdminBypass,
    /// Creating a session: any authenticated caller may (the route's role was checked before).
    Authenticated,
    /// The deployment runs without authentication.
    AuthDisabled,
    /// Authentication is on and there is no verified caller.
    Unauthenticated,
    /// The session has no owner recorded: nobody but an admin may use it (fail closed).
    NoOwnerRecord,
    /// The session belongs to someone else.
    NotOwner,
    /// A reason from a rule a deployment added (see [`CustomReason`]).
    Custom(CustomReason),
}

impl Reason {
    /// Allow or deny.
    pub const fn effect(&self) -> Effect {
        match self {
            Self::Owner | Self::AdminBypass | Self::Authenticated | Self::AuthDisabled => {
                Effect::Allow
            }
            Self::Unauthenticated | Self::NoOwnerRecord | Self::NotOwner => Effect::Deny,
            Self::Custom(c) => c.effect,
        }
    }

    const OWNER: Code = Code::new("owner");
    const ADMIN_BYPASS: Code = Code::new("admin_bypass");
    const AUTHENTICATED: Code = Code::new("authenticated");
    const AUTH_DISABLED: Code = Code::new("auth_disabled");
    const UNAUTHENTICATED: Code = Code::new("unauthenticated");
    const NO_OWNER_RECORD: Code = Code::new("no_owner_record");
    const NOT_OWNER: Code = Code::new("not_owner");

    /// The stable snake_case code.
    pub const fn code(&self) -> Code {
        match self {
            Self::Owner => Self::OWNER,
            Self::AdminBypass => Self::ADMIN_BYPASS,
            Self::Authenticated => Self::AUTHENTICATED,
            Self::AuthDisabled => Self::AUTH_DISABLED,
            Self::Unauthenticated => Self::UNAUTHENTICATED,
            Self::NoOwnerRecord => Self::NO_OWNER_RECORD,
            Self::NotOwner => Self::NOT_OWNER,
            Self::Custom(c) => c.code,
        }
    }

    /// The lowercase message; for denials, the body a client may see.
    pub const fn message(&self) -> &'static str {
        match self {
            Self::Owner => "caller owns the session",
            Self::AdminBypass => "caller holds the admin role",
            Self::Authenticated => "any authenticated caller may create a session",
            Self::AuthDisabled => "authentication is disabled",
            Self::Unauthenticated => "authentication required",
            Self::NoOwnerRecord => "sandbox has no owner record",
            Self::NotOwner => "you do not own this sandbox",
            Self::Custom(c) => c.message,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The reason of a rule a deployment added, such as "shared with your group".
///
/// Codes should be distinct from the built-in ones. The message of a denying reason is the body
/// a client sees: lowercase, no trailing period, nothing the caller should not learn.
///
/// ```
/// use agentcube_auth_core::Code;
/// use agentcube_rlac::CustomReason;
///
/// const SHARED: CustomReason =
///     CustomReason::allow(Code::new("shared_with_group"), "session is shared with your group");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomReason {
    effect: Effect,
    code: Code,
    message: &'static str,
}

impl CustomReason {
    /// An allowing reason.
    pub const fn allow(code: Code, message: &'static str) -> Self {
        Self {
            effect: Effect::Allow,
            code,
            message,
        }
    }

    /// A denying reason.
    pub const fn deny(code: Code, message: &'static str) -> Self {
        Self {
            effect: Effect::Deny,
            code,
            message,
        }
    }
}

impl From<CustomReason> for Reason {
    fn from(reason: CustomReason) -> Self {
        Self::Custom(reason)
    }
}

/// The outcome of an access check: an effect and the reason for it. `Copy`; no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a decision that is not checked authorizes nothing"]
pub struct Decision {
    reason: Reason,
}

impl Decision {
    /// The decision that `reason` implies.
    pub const fn new(reason: Reason) -> Self {
        Self { reason }
    }

    /// Whether the request may proceed.
    pub const fn is_allowed(&self) -> bool {
        matches!(self.reason.effect(), Effect::Allow)
    }

    /// Allow or deny.
    pub const fn effect(&self) -> Effect {
        self.reason.effect()
    }

    /// Why.
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The reason's stable code.
    pub const fn code(&self) -> Code {
        self.reason.code()
    }

    /// The reason's message.
    pub const fn message(&self) -> &'static str {
        self.reason.message()
    }

    /// `Ok(reason)` if allowed, otherwise the denial as an error (for `?`).
    ///
    /// # Errors
    /// [`AccessDenied`] when the effect is deny.
    pub const fn into_result(self) -> Result<Reason, AccessDenied> {
        if self.is_allowed() {
            Ok(self.reason)
        } else {
            Err(AccessDenied {
                reason: self.reason,
            })
        }
    }
}

impl From<Reason> for Decision {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

/// `allow (owner): caller owns the session`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.effect().code(),
            self.code(),
            self.message()
        )
    }
}

/// A denied access check, as an error. Its `Display` is the message a client may see.
///
/// As a [`Rejection`]: the reason's code and message, 401 for [`Reason::Unauthenticated`] and
/// 403 for every other denial (custom ones included) — `403 not_owner: you do not own this
/// sandbox`, `403 no_owner_record: sandbox has no owner record`. No `WWW-Authenticate`
/// challenge: ownership is not a scope the caller could ask for, and this crate does not know
/// how the caller authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{}", reason.message())]
pub struct AccessDenied {
    reason: Reason,
}

impl AccessDenied {
    /// Why access was denied.
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The reason's stable code.
    pub const fn code(&self) -> Code {
        self.reason.code()
    }

    /// The reason's message, the body a client may see.
    pub const fn message(&self) -> &'static str {
        self.reason.message()
    }
}

impl Rejection for AccessDenied {
    fn code(&self) -> Code {
        AccessDenied::code(self)
    }

    fn status(&self) -> StatusCode {
        match self.reason {
            Reason::Unauthenticated => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.reason.message())
    }
}

/// Everything a policy decides on.
///
/// Built with [`AccessRequest::new`] or [`AccessRequest::for_record`]; `#[non_exhaustive]` so
/// that fields can be added without breaking policies, which only read them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AccessRequest<'a> {
    /// The verified caller, or `None` if the request is unauthenticated.
    pub principal: Option<&'a Principal>,
    /// What the caller wants to do.
    pub action: Action,
    /// The session's recorded owner, or `None` if it has none (or for `Create`).
    pub owner: Option<&'a OwnerId>,
    /// The session id, when known (for audit logs and custom rules).
    pub session_id: Option<&'a str>,
    /// The whole session record, when the caller has it (custom rules may read its
    /// [`extra`](SessionRecord::extra) fields, e.g. a list of groups it is shared with).
    pub record: Option<&'a SessionRecord>,
    /// The id of the HTTP request that asked, when known (for the audit event).
    pub request_id: Option<&'a str>,
}

impl<'a> AccessRequest<'a> {
    /// A request on a session whose owner is `owner`.
    pub const fn new(
        principal: Option<&'a Principal>,
        owner: Option<&'a OwnerId>,
        action: Action,
    ) -> Self {
        Self {
            principal,
            action,
            owner,
            session_id: None,
            record: None,
            request_id: None,
        }
    }

    /// A request on the session `record` (owner and session id taken from it).
    pub fn for_record(
        principal: Option<&'a Principal>,
        record: &'a SessionRecord,
        action: Action,
    ) -> Self {
        Self {
            principal,
            action,
            owner: record.owner(),
            session_id: Some(record.session_id.as_str()),
            record: Some(record),
            request_id: None,
        }
    }

    /// A request to create a session.
    pub const fn create(principal: Option<&'a Principal>) -> Self {
        Self::new(principal, None, Action::Create)
    }

    /// Sets the session id.
    pub const fn with_session_id(mut self, session_id: &'a str) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// Sets the id of the HTTP request (for the audit event).
    pub const fn with_request_id(mut self, request_id: Option<&'a str>) -> Self {
        self.request_id = request_id;
        self
    }
}

/// Decides whether a request may proceed.
///
/// Implement it to add rules; combine policies with [`AccessPolicyExt::or`] (allow if either
/// allows) and [`AccessPolicyExt::and`] (deny if either denies), or wrap one and post-process
/// its decision. Implementations should be allocation-free and must not block: the Router calls
/// them on every proxied request.
pub trait AccessPolicy: Send + Sync {
    /// The decision for `request`.
    fn decide(&self, request: &AccessRequest<'_>) -> Decision;
}

impl<P: AccessPolicy + ?Sized> AccessPolicy for &P {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        (**self).decide(request)
    }
}

impl<P: AccessPolicy + ?Sized> AccessPolicy for Arc<P> {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        (**self).decide(request)
    }
}

impl<P: AccessPolicy + ?Sized> AccessPolicy for Box<P> {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        (**self).decide(request)
    }
}

/// Combinators for [`AccessPolicy`].
pub trait AccessPolicyExt: AccessPolicy + Sized {
    /// Allows if `self` allows, else if `other` allows; if both deny, `self`'s denial stands.
    ///
    /// Use it to add permissions (sharing a session with a group). `other` sees the same
    /// request, including `principal: None`; it must deny what it does not understand.
    fn or<P: AccessPolicy>(self, other: P) -> AnyOf<Self, P> {
        AnyOf(self, other)
    }

    /// Denies if `self` denies, else if `other` denies; if both allow, `self`'s reason stands.
    ///
    /// Use it to add restrictions (forbid deletes from a read-only group).
    fn and<P: AccessPolicy>(self, other: P) -> AllOf<Self, P> {
        AllOf(self, other)
    }
}

impl<P: AccessPolicy> AccessPolicyExt for P {}

/// See [`AccessPolicyExt::or`].
#[derive(Clone, Debug)]
pub struct AnyOf<A, B>(pub A, pub B);

impl<A: AccessPolicy, B: AccessPolicy> AccessPolicy for AnyOf<A, B> {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        let first = self.0.decide(request);
        if first.is_allowed() {
            return first;
        }
        let second = self.1.decide(request);
        if second.is_allowed() { second } else { first }
    }
}

/// See [`AccessPolicyExt::and`].
#[derive(Clone, Debug)]
pub struct AllOf<A, B>(pub A, pub B);

impl<A: AccessPolicy, B: AccessPolicy> AccessPolicy for AllOf<A, B> {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        let first = self.0.decide(request);
        if !first.is_allowed() {
            return first;
        }
        let second = self.1.decide(request);
        if second.is_allowed() { first } else { second }
    }
}

/// A policy from a closure: `policy_fn(|request| …)`.
pub fn policy_fn<F>(f: F) -> PolicyFn<F>
where
    F: Fn(&AccessRequest<'_>) -> Decision + Send + Sync,
{
    PolicyFn(f)
}

/// A policy from a closure; see [`policy_fn`].
#[derive(Clone)]
pub struct PolicyFn<F>(F);

impl<F> fmt::Debug for PolicyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyFn")
    }
}

impl<F> AccessPolicy for PolicyFn<F>
where
    F: Fn(&AccessRequest<'_>) -> Decision + Send + Sync,
{
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        (self.0)(request)
    }
}

/// The name of the default admin role (a realm role).
pub const DEFAULT_ADMIN_ROLE: &str = "admin";

/// The default policy: owner or admin, fail closed.
///
/// Rules, first match wins:
///
/// 1. authentication disabled → allow ([`Reason::AuthDisabled`]);
/// 2. no principal → deny ([`Reason::Unauthenticated`]);
/// 3. [`Action::Create`] → allow ([`Reason::Authenticated`]);
/// 4. the principal is the recorded owner → allow ([`Reason::Owner`]);
/// 5. the principal holds the admin role through the hierarchy → allow
///    ([`Reason::AdminBypass`]) — admins can also reach ownerless sessions;
/// 6. no owner recorded → deny ([`Reason::NoOwnerRecord`]);
/// 7. otherwise → deny ([`Reason::NotOwner`]).
///
/// The admin role is the realm role `admin` by default: a client role named `admin` of some
/// other Keycloak client is a different [`Role`] and does not bypass. `decide` does not
/// allocate.
#[derive(Clone, Debug)]
pub struct OwnerPolicy {
    admin_role: Option<Role>,
    hierarchy: Arc<RoleHierarchy>,
    owner_scheme: OwnerIdScheme,
    auth: AuthMode,
}

impl OwnerPolicy {
    /// The default policy with `hierarchy`: admin role realm `admin`,
    /// [`OwnerIdScheme::SubjectOnly`], authentication enabled.
    pub fn new(hierarchy: Arc<RoleHierarchy>) -> Self {
        Self {
            admin_role: Some(Role::realm(DEFAULT_ADMIN_ROLE)),
            hierarchy,
            owner_scheme: OwnerIdScheme::SubjectOnly,
            auth: AuthMode::Enabled,
        }
    }

    /// Sets the role that bypasses ownership (the Router's `--admin-role`).
    #[must_use]
    pub fn with_admin_role(mut self, role: Role) -> Self {
        self.admin_role = Some(role);
        self
    }

    /// No role bypasses ownership.
    #[must_use]
    pub fn without_admin_bypass(mut self) -> Self {
        self.admin_role = None;
        self
    }

    /// Sets how principals are compared with recorded owners; it must be the scheme the
    /// WorkloadManager used to record them.
    #[must_use]
    pub fn with_owner_scheme(mut self, scheme: OwnerIdScheme) -> Self {
        self.owner_scheme = scheme;
        self
    }

    /// Sets whether the deployment authenticates callers.
    #[must_use]
    pub fn with_auth_mode(mut self, auth: AuthMode) -> Self {
        self.auth = auth;
        self
    }

    /// The admin role, if any.
    pub fn admin_role(&self) -> Option<&Role> {
        self.admin_role.as_ref()
    }

    /// The role hierarchy.
    pub fn hierarchy(&self) -> &Arc<RoleHierarchy> {
        &self.hierarchy
    }

    /// The owner id scheme.
    pub fn owner_scheme(&self) -> OwnerIdScheme {
        self.owner_scheme
    }

    /// The authentication mode.
    pub fn auth_mode(&self) -> AuthMode {
        self.auth
    }

    /// Whether `principal` holds the admin role (through the hierarchy).
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.admin_role
            .as_ref()
            .is_some_and(|admin| self.hierarchy.grants(principal.roles(), admin))
    }
}

impl Default for OwnerPolicy {
    /// [`OwnerPolicy::new`] with a flat hierarchy (no role implies another).
    fn default() -> Self {
        Self::new(Arc::new(RoleHierarchy::flat()))
    }
}

impl AccessPolicy for OwnerPolicy {
    fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        if self.auth == AuthMode::Disabled {
            return Decision::new(Reason::AuthDisabled);
        }
        let Some(principal) = request.principal else {
            return Decision::new(Reason::Unauthenticated);
        };
        if !request.action.needs_ownership() {
            return Decision::new(Reason::Authenticated);
        }
        if let Some(owner) = request.owner
            && owner.matches(principal, self.owner_scheme)
        {
            return Decision::new(Reason::Owner);
        }
        if self.is_admin(principal) {
            return Decision::new(Reason::AdminBypass);
        }
        Decision::new(match request.owner {
            None => Reason::NoOwnerRecord,
            Some(_) => Reason::NotOwner,
        })
    }
}

/// Writes the audit event of `decision` and counts it (metric
/// [`DECISIONS_TOTAL`](crate::metrics::DECISIONS_TOTAL), with the feature `metrics`): call it
/// once for every decision a service acts on.
///
/// The event is auth-core's [`AuditEvent`] (target `agentcube::audit`, level INFO), the shape
/// every decision in the workspace is written in: `request_id`, the caller's `subject`,
/// `client_id` and `issuer`, `action` (`create`, `invoke`, `read`, `delete`), `resource`
/// (`session/<id>`, or `sessions` for a create), `decision` (`allow`/`deny`), `reason` (the
/// reason code) and, for a denial, the `status` it is answered with.
pub fn audit(request: &AccessRequest<'_>, decision: &Decision) {
    crate::metrics::decision(decision);
    let resource = match (request.session_id, request.action) {
        (Some(id), _) => AuditResource::Session(id),
        (None, Action::Create) => AuditResource::NewSession,
        (None, _) => AuditResource::Unspecified,
    };
    let effect = match decision.effect() {
        Effect::Allow => AuditDecision::Allow,
        Effect::Deny => AuditDecision::Deny,
    };
    let mut event = AuditEvent::new(effect, request.action.code(), resource, decision.code())
        .request_id(request.request_id)
        .principal(request.principal);
    if let Err(denied) = decision.into_result() {
        event = event.status(denied.status().as_u16());
    }
    event.emit();
}
