//! The audit event: one structured `tracing` event for every authentication or authorization
//! decision that reaches a response.
//!
//! Every service in the workspace writes its decisions through [`AuditEvent::emit`], so an
//! operator filters one target, [`AUDIT_TARGET`] (`agentcube::audit`), and reads one shape:
//!
//! | field | value |
//! |---|---|
//! | `request_id` | the request id, when the service has one |
//! | `subject` | the caller's `sub`, when known (absent for a token that did not verify) |
//! | `client_id` | the caller's client (`azp` / `client_id`), when known |
//! | `issuer` | the caller's issuer, when known |
//! | `action` | what was decided on: `authenticate`, `authorize` (a route's requirement), or an ownership action (`create`, `invoke`, `read`, `delete`) |
//! | `resource` | the session (`session/<id>`), `sessions` for a new one, the request path for a route, or `-` |
//! | `decision` | `allow` or `deny` |
//! | `reason` | the stable code: a rejection code (`expired`, `insufficient_role`, …) or the policy's reason (`owner`, `admin_bypass`, `not_owner`, …) |
//! | `status` | the HTTP status answered, when the event is about a response |
//!
//! The event is at `INFO`, with the message `audit allow` or `audit deny`. It never carries a token, a header value or a query string: the fields are
//! codes, ids and the path. Emitting it allocates nothing of its own.
//!
//! ```
//! use agentcube_auth_core::Code;
//! use agentcube_auth_core::audit::{AuditEvent, AuditResource};
//!
//! AuditEvent::deny(Code::new("invoke"), AuditResource::Session("6f1b"), Code::new("not_owner"))
//!     .request_id(Some("req-1"))
//!     .status(403)
//!     .emit();
//! ```

use std::fmt;

use crate::principal::Principal;
use crate::rejection::Code;

/// The `tracing` target of every audit event.
pub const AUDIT_TARGET: &str = "agentcube::audit";

/// The action of an authentication decision (a token refused or accepted).
pub const AUTHENTICATE: Code = Code::new("authenticate");

/// The action of a route's requirement (a role, scope or permission) refused or met.
pub const AUTHORIZE: Code = Code::new("authorize");

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditDecision {
    /// The request went on.
    Allow,
    /// The request was refused.
    Deny,
}

impl AuditDecision {
    /// `allow` or `deny`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a decision was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditResource<'a> {
    /// An existing session: `session/<id>`.
    Session(&'a str),
    /// A session about to be created: `sessions`.
    NewSession,
    /// A route, by the request path (never the query string): `/v1/…`.
    Route(&'a str),
    /// Not known to the code that decided: `-`.
    Unspecified,
}

impl fmt::Display for AuditResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(id) => write!(f, "session/{id}"),
            Self::NewSession => f.write_str("sessions"),
            Self::Route(path) => f.write_str(path),
            Self::Unspecified => f.write_str("-"),
        }
    }
}

/// One audit event; build it with [`AuditEvent::allow`] or [`AuditEvent::deny`], add what is
/// known, then [`emit`](Self::emit) it. See the [module docs](self) for the fields.
#[derive(Clone, Copy, Debug)]
#[must_use = "an audit event is written by `emit`"]
pub struct AuditEvent<'a> {
    decision: AuditDecision,
    action: Code,
    resource: AuditResource<'a>,
    reason: Code,
    request_id: Option<&'a str>,
    subject: Option<&'a str>,
    client_id: Option<&'a str>,
    issuer: Option<&'a str>,
    status: Option<u16>,
}

impl<'a> AuditEvent<'a> {
    /// An event with `decision`.
    pub const fn new(
        decision: AuditDecision,
        action: Code,
        resource: AuditResource<'a>,
        reason: Code,
    ) -> Self {
        Self {
            decision,
            action,
            resource,
            reason,
            request_id: None,
            subject: None,
            client_id: None,
            issuer: None,
            status: None,
        }
    }

    /// An allowing decision.
    pub const fn allow(action: Code, resource: AuditResource<'a>, reason: Code) -> Self {
        Self::new(AuditDecision::Allow, action, resource, reason)
    }

    /// A denying decision.
    pub const fn deny(action: Code, resource: AuditResource<'a>, reason: Code) -> Self {
        Self::new(AuditDecision::Deny, action, resource, reason)
    }

    /// Sets the request id.
    pub const fn request_id(mut self, request_id: Option<&'a str>) -> Self {
        self.request_id = request_id;
        self
    }

    /// Sets the caller (subject, client id and issuer), when known.
    pub fn principal(mut self, principal: Option<&'a Principal>) -> Self {
        if let Some(p) = principal {
            self.subject = Some(p.subject());
            self.client_id = p.client_id();
            self.issuer = Some(p.issuer()).filter(|i| !i.is_empty());
        }
        self
    }

    /// Sets the HTTP status answered.
    pub const fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Allow or deny.
    pub const fn decision(&self) -> AuditDecision {
        self.decision
    }

    /// The action.
    pub const fn action(&self) -> Code {
        self.action
    }

    /// The reason code.
    pub const fn reason(&self) -> Code {
        self.reason
    }

    /// The resource.
    pub const fn resource(&self) -> AuditResource<'a> {
        self.resource
    }

    /// Writes the event (target [`AUDIT_TARGET`], level `INFO`).
    pub fn emit(&self) {
        tracing::info!(
            target: AUDIT_TARGET,
            request_id = self.request_id,
            subject = self.subject,
            client_id = self.client_id,
            issuer = self.issuer,
            action = self.action.as_str(),
            resource = %self.resource,
            decision = self.decision.as_str(),
            reason = self.reason.as_str(),
            status = self.status,
            "audit {}",
            self.decision.as_str(),
        );
    }
}
