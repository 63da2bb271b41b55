//! The authenticated caller.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::claims::Claims;
use crate::role::{Role, RoleSet};

/// Who made a request: the result of verifying a token and mapping its claims.
///
/// Cloning is a reference-count increment, so a principal can be put into request extensions,
/// caches and spawned tasks freely.
///
/// Besides the identity, scopes, permissions and roles every issuer can describe, a principal
/// carries typed attributes of the service's own — a tenant, an organisation, a plan — set by
/// its [`ClaimMapper`](crate::ClaimMapper) with [`PrincipalBuilder::extension`] and read with
/// [`Principal::extension`], one value per type:
///
/// ```
/// use agentcube_auth_core::Principal;
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(String);
///
/// let principal = Principal::builder("https://issuer.example/", "user-1")
///     .extension(Tenant("acme".into()))
///     .build();
/// assert_eq!(principal.extension::<Tenant>(), Some(&Tenant("acme".into())));
/// assert_eq!(principal.extension::<String>(), None);
/// ```
///
/// With the `serde` feature a principal serialises as its identity, scopes, permissions and
/// roles: never its raw claims (they may hold personal data the service did not choose to
/// show) and never its extensions (they are the service's own types).
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// Every string of the principal, one after another, so that building one costs one
    /// allocation for all of them; the fields below are spans of it. A field set twice leaves
    /// its old text behind (builders set each once).
    text: String,
    issuer: Span,
    subject: Span,
    email: Option<Span>,
    email_verified: bool,
    username: Option<Span>,
    client_id: Option<Span>,
    service_account: bool,
    scopes: Vec<Span>,
    permissions: Vec<Span>,
    roles: RoleSet,
    claims: Claims,
    extensions: Extensions,
}

/// Where one string of a principal lies in [`Inner::text`].
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Inner {
    fn str(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    /// What `Debug` shows of a principal or of one being built, under `name`: the issuer, the
    /// subject, the client id, whether it is a service account, and the roles. The email (and
    /// whether it is verified), the username, the scopes, the permissions, the raw claims and
    /// the extensions are left out: personal data, or whatever a mapper put there.
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("issuer", &self.str(self.issuer))
            .field("subject", &self.str(self.subject))
            .field("client_id", &self.client_id.map(|s| self.str(s)))
            .field("service_account", &self.service_account)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }

    fn push(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    /// Appends each string, returning their spans.
    fn push_all<S: AsRef<str>>(&mut self, strings: impl IntoIterator<Item = S>) -> Vec<Span> {
        strings.into_iter().map(|s| self.push(s.as_ref())).collect()
    }
}

/// Typed attributes, at most one value per type. Empty costs no allocation; a few values are
/// found by a linear scan, which beats hashing at the sizes a principal carries. Values are
/// `Arc`s so that cloning a builder clones no attribute.
#[derive(Clone, Default)]
struct Extensions {
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.values
            .iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_ref::<T>())
    }

    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.values.iter_mut().find(|(key, _)| *key == id) {
            Some(slot) => slot.1 = value,
            None => self.values.push((id, value)),
        }
    }
}

impl Principal {
    /// Starts building a principal for `subject` as asserted by `issuer`.
    ///
    /// Claim mappers use this; services normally receive a finished principal from a verifier.
    pub fn builder(issuer: impl AsRef<str>, subject: impl AsRef<str>) -> PrincipalBuilder {
        let (issuer, subject) = (issuer.as_ref(), subject.as_ref());
        // Room for the usual email, username, client and scopes too.
        let mut text = String::with_capacity(issuer.len() + subject.len() + 160);
        text.push_str(issuer);
        text.push_str(subject);
        let issuer_end = issuer.len();
        PrincipalBuilder {
            inner: Inner {
                issuer: Span {
                    start: 0,
                    end: issuer_end,
                },
                subject: Span {
                    start: issuer_end,
                    end: text.len(),
                },
                text,
                email: None,
                email_verified: false,
                username: None,
                client_id: None,
                service_account: false,
                scopes: Vec::new(),
                permissions: Vec::new(),
                roles: RoleSet::new(),
                claims: Claims::default(),
                extensions: Extensions::default(),
            },
        }
    }

    /// The issuer (`iss`) that vouched for this principal.
    pub fn issuer(&self) -> &str {
        self.inner.str(self.inner.issuer)
    }

    /// The subject (`sub`): the stable identifier of the caller within its issuer.
    pub fn subject(&self) -> &str {
        self.inner.str(self.inner.subject)
    }

    /// The email address, verified or not. Never use it as an identifier.
    pub fn email(&self) -> Option<&str> {
        self.inner.email.map(|s| self.inner.str(s))
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
        self.inner.username.map(|s| self.inner.str(s))
    }

    /// The OAuth client the token was issued to (`azp`, `client_id` or `clientId`).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.map(|s| self.inner.str(s))
    }

    /// Whether the principal is a client acting for itself (client_credentials), not a person.
    pub fn is_service_account(&self) -> bool {
        self.inner.service_account
    }

    /// The granted OAuth scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner.scopes.iter().map(|s| self.inner.str(*s))
    }

    /// Whether the scope was granted. Allocation-free.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The granted permissions, read by the mapper from a permissions claim (such as Auth0's
    /// `permissions`); empty unless the mapper sets them.
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.inner.permissions.iter().map(|s| self.inner.str(*s))
    }

    /// Whether the permission was granted. Allocation-free.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions().any(|p| p == permission)
    }

    /// The roles held directly (before any [`RoleHierarchy`](crate::RoleHierarchy) expansion).
    pub fn roles(&self) -> &RoleSet {
        &self.inner.roles
    }

    /// Whether the plain role `name` is held directly (no hierarchy; a
    /// [`Requirement`](crate::Requirement) applies one). Allocation-free.
    pub fn has_role(&self, name: &str) -> bool {
        self.inner.roles.contains_name(name)
    }

    /// The full verified payload.
    pub fn claims(&self) -> &Claims {
        &self.inner.claims
    }

    /// The service's attribute of type `T`, if the mapper set one (see
    /// [`PrincipalBuilder::extension`]).
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }
}

/// Shows the issuer, subject, client id, service-account flag and roles; the email, username,
/// scopes, permissions, raw claims and extensions are left out (they may hold personal data).
impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("Principal", f)
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
    pub fn email(mut self, email: impl AsRef<str>, verified: bool) -> Self {
        self.inner.email = Some(self.inner.push(email.as_ref()));
        self.inner.email_verified = verified;
        self
    }

    /// Sets the display username.
    pub fn username(mut self, username: impl AsRef<str>) -> Self {
        self.inner.username = Some(self.inner.push(username.as_ref()));
        self
    }

    /// Sets the OAuth client id.
    pub fn client_id(mut self, client_id: impl AsRef<str>) -> Self {
        self.inner.client_id = Some(self.inner.push(client_id.as_ref()));
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
        S: AsRef<str>,
    {
        self.inner.scopes = self.inner.push_all(scopes);
        self
    }

    /// Sets the granted permissions (for example from Auth0's `permissions` claim).
    pub fn permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner.permissions = self.inner.push_all(permissions);
        self
    }

    /// Sets the roles, replacing any set before.
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.inner.roles = roles.into_iter().collect();
        self
    }

    /// Adds roles to those already set (a mapper step extending another mapper's principal).
    pub fn add_roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles = roles.into_iter().peekable();
        if roles.peek().is_some() {
            self.inner.roles = self.inner.roles.iter().cloned().chain(roles).collect();
        }
        self
    }

    /// Attaches a typed attribute of the service's own (a tenant, an organisation), read back
    /// with [`Principal::extension`]. A second value of the same type replaces the first.
    pub fn extension<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner.extensions.insert(value);
        self
    }

    /// The attribute of type `T` set so far, for a mapper step that builds on an earlier one.
    pub fn get_extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }

    /// The roles set so far.
    pub fn get_roles(&self) -> &RoleSet {
        &self.inner.roles
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

/// Shows what the principal will show (see [`Principal`]'s `Debug`).
impl fmt::Debug for PrincipalBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("PrincipalBuilder", f)
    }
}

/// `{"issuer", "subject", "email"?, "email_verified", "username"?, "client_id"?,
/// "service_account", "scopes", "permissions", "roles"}`; absent optional members are left
/// out. The raw claims and the extensions are never serialised.
#[cfg(feature = "serde")]
impl serde::Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        fn optional<M: SerializeStruct>(
            out: &mut M,
            key: &'static str,
            value: Option<&str>,
        ) -> Result<(), M::Error> {
            match value {
                Some(value) => out.serialize_field(key, value),
                None => out.skip_field(key),
            }
        }
        /// Strings of the principal, serialised as a list.
        struct Strings<'a>(&'a Inner, &'a [Span]);
        impl serde::Serialize for Strings<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.1.iter().map(|span| self.0.str(*span)))
            }
        }
        let p = &*self.inner;
        let mut out = serializer.serialize_struct("Principal", 10)?;
        out.serialize_field("issuer", self.issuer())?;
        out.serialize_field("subject", self.subject())?;
        optional(&mut out, "email", self.email())?;
        out.serialize_field("email_verified", &p.email_verified)?;
        optional(&mut out, "username", self.username())?;
        optional(&mut out, "client_id", self.client_id())?;
        out.serialize_field("service_account", &p.service_account)?;
        out.serialize_field("scopes", &Strings(p, &p.scopes))?;
        out.serialize_field("permissions", &Strings(p, &p.permissions))?;
        out.serialize_field("roles", &p.roles)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);

    #[test]
    fn extensions_are_typed_replaced_and_not_shown() {
        let builder = Principal::builder("i", "s")
            .extension(Tenant("a"))
            .extension(7_u32)
            .extension(Tenant("b"));
        assert_eq!(builder.get_extension::<Tenant>(), Some(&Tenant("b")));
        let p = builder.build();
        assert_eq!(p.extension::<Tenant>(), Some(&Tenant("b")));
        assert_eq!(p.extension::<u32>(), Some(&7));
        assert_eq!(p.extension::<u64>(), None);
        assert!(!format!("{p:?}").contains("Tenant"));
    }

    #[test]
    fn debug_shows_who_and_the_roles_and_hides_personal_data_alike_before_and_after_build() {
        let builder = Principal::builder("https://kc/realms/a", "sub-1")
            .email("alice@example.com", true)
            .username("alice")
            .client_id("client-7f3")
            .scopes(["read:secret-scope"])
            .permissions(["write:secret-permission"])
            .roles([Role::new("sandbox:invoke")])
            .extension(Tenant("acme"));
        let shown_builder = format!("{builder:?}");
        let shown = format!("{:?}", builder.build());
        for (name, text) in [("PrincipalBuilder", &shown_builder), ("Principal", &shown)] {
            assert!(text.starts_with(&format!("{name} {{")), "{text}");
            for visible in [
                "https://kc/realms/a",
                "sub-1",
                "client-7f3",
                "sandbox:invoke",
            ] {
                assert!(text.contains(visible), "{name} hides {visible}: {text}");
            }
            for hidden in [
                "alice",
                "example.com",
                "secret-scope",
                "secret-permission",
                "acme",
            ] {
                assert!(!text.contains(hidden), "{name} shows {hidden}: {text}");
            }
        }
        assert_eq!(
            shown_builder.replacen("PrincipalBuilder", "Principal", 1),
            shown
        );
    }

    #[test]
    fn a_principal_without_extensions_allocates_none() {
        let p = Principal::builder("i", "s").build();
        assert_eq!(p.inner.extensions.values.capacity(), 0);
    }

    #[test]
    fn add_roles_keeps_the_roles_already_set() {
        let p = Principal::builder("i", "s")
            .roles([Role::new("a")])
            .add_roles([Role::new("b"), Role::new("a")])
            .build();
        assert_eq!(p.roles().len(), 2);
        assert!(p.has_role("a") && p.has_role("b"));
    }
}
