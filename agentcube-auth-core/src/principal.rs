//! The authenticated caller.

use std::fmt;
use std::sync::Arc;

use crate::claims::Claims;
use crate::role::{Role, RoleSet};

/// Who made a request: the result of verifying a token and mapping its claims.
///
/// Cloning is a reference-count increment, so a principal can be put into request extensions,
/// caches and spawned tasks freely.
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    issuer: Box<str>,
    subject: Box<str>,
    email: Option<Box<str>>,
    email_verified: bool,
    username: Option<Box<str>>,
    client_id: Option<Box<str>>,
    service_account: bool,
    scopes: Box<[Box<str>]>,
    roles: RoleSet,
    claims: Claims,
}

impl Principal {
    /// Starts building a principal for `subject` as asserted by `issuer`.
    ///
    /// Claim mappers use this; services normally receive a finished principal from a verifier.
    pub fn builder(issuer: impl Into<Box<str>>, subject: impl Into<Box<str>>) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                issuer: issuer.into(),
                subject: subject.into(),
                email: None,
                email_verified: false,
                username: None,
                client_id: None,
                service_account: false,
                scopes: Box::default(),
                roles: RoleSet::new(),
                claims: Claims::default(),
            },
        }
    }

    /// The issuer (`iss`) that vouched for this principal.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The subject (`sub`): the stable identifier of the caller within its issuer.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The email address, verified or not. Never use it as an identifier.
    pub fn email(&self) -> Option<&str> {
        self.inner.email.as_deref()
    }

    /// Whether the issuer asserted `email_verified: true`.
    pub fn email_verified(&self) -> bool {
        self.inner.email_verified
    }

    /// The email address only if the issuer marked it verified.
    pub fn verified_email(&self) -> Option<&str> {
        self.email().filter(|_| self.inner.email_verified)
    }

    /// A human-readable name such as Keycloak's `preferred_username`. Not unique; display only.
    pub fn username(&self) -> Option<&str> {
        self.inner.username.as_deref()
    }

    /// The OAuth client the token was issued to (`azp`, `client_id` or `clientId`).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// Whether the principal is a client acting for itself (client_credentials), not a person.
    pub fn is_service_account(&self) -> bool {
        self.inner.service_account
    }

    /// The granted OAuth scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner.scopes.iter().map(|s| &**s)
    }

    /// Whether the scope was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.inner.scopes.iter().any(|s| &**s == scope)
    }

    /// The roles held directly (before any [`RoleHierarchy`](crate::RoleHierarchy) expansion).
    pub fn roles(&self) -> &RoleSet {
        &self.inner.roles
    }

    /// The full verified payload.
    pub fn claims(&self) -> &Claims {
        &self.inner.claims
    }
}

/// Shows identity and roles; the raw claims are left out (they may hold personal data).
impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("issuer", &self.inner.issuer)
            .field("subject", &self.inner.subject)
            .field("client_id", &self.inner.client_id)
            .field("service_account", &self.inner.service_account)
            .field("roles", &self.inner.roles)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Principal`].
#[derive(Clone)]
#[must_use]
pub struct PrincipalBuilder {
    inner: Inner,
}

impl PrincipalBuilder {
    /// Sets the email address and whether the issuer verified it.
    pub fn email(mut self, email: impl Into<Box<str>>, verified: bool) -> Self {
        self.inner.email = Some(email.into());
        self.inner.email_verified = verified;
        self
    }

    /// Sets the display username.
    pub fn username(mut self, username: impl Into<Box<str>>) -> Self {
        self.inner.username = Some(username.into());
        self
    }

    /// Sets the OAuth client id.
    pub fn client_id(mut self, client_id: impl Into<Box<str>>) -> Self {
        self.inner.client_id = Some(client_id.into());
        self
    }

    /// Marks the principal as a service account.
    pub fn service_account(mut self, yes: bool) -> Self {
        self.inner.service_account = yes;
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.inner.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.inner.roles = roles.into_iter().collect();
        self
    }

    /// Attaches the verified payload.
    pub fn claims(mut self, claims: Claims) -> Self {
        self.inner.claims = claims;
        self
    }

    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal {
            inner: Arc::new(self.inner),
        }
    }
}
