//! Turning verified claims into a [`Principal`]: the extension point for identity providers.

use std::borrow::Cow;

use serde_json::Value;

use crate::claims::Claims;
use crate::error::AuthError;
use crate::principal::{Principal, PrincipalBuilder};
use crate::role::Role;

/// Maps the claims of a verified token to a [`Principal`].
///
/// Verifiers call this after every signature and claim check has passed. Implement it to support
/// an identity provider whose tokens are shaped differently; the two provided mappers cover
/// Keycloak and the common "roles at a claim path" case.
pub trait ClaimMapper: Send + Sync {
    /// Builds the principal.
    ///
    /// # Errors
    /// [`AuthError::MissingClaim`] or [`AuthError::InvalidClaim`] when the claims cannot describe
    /// a principal (no `iss` or `sub`, or wrongly typed identity claims).
    fn map(&self, claims: Claims) -> Result<Principal, AuthError>;
}

impl<M: ClaimMapper + ?Sized> ClaimMapper for std::sync::Arc<M> {
    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        (**self).map(claims)
    }
}

/// Keycloak access tokens: realm roles from `realm_access.roles`, client roles from
/// `resource_access.<client>.roles` kept as [`Role::client`] so that another client's `admin` is
/// never the realm's `admin`.
///
/// Both are read as Keycloak writes them, nested: the `roles` array inside the object member
/// `realm_access` (or inside `resource_access` → `<client>`). A top-level member whose name
/// merely contains the dots — `"realm_access.roles": ["admin"]`, which a custom protocol mapper
/// or a user attribute could put into a token — grants nothing. (This is where the mapper
/// differs from [`ClaimPathMapper`], whose configured path prefers such a flat member.)
///
/// Identity: `preferred_username`, `email` (verified only when `email_verified` is `true`),
/// client id from `azp`, then `client_id`, then `clientId`; service account when Keycloak's
/// service-account mapper added `client_id`/`clientId`; scopes from `scope`.
#[derive(Clone, Debug, Default)]
pub struct KeycloakClaimMapper {
    _private: (),
}

impl KeycloakClaimMapper {
    /// The mapper.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ClaimMapper for KeycloakClaimMapper {
    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        let mut roles: Vec<Role> = nested_roles(claims.get("realm_access"))
            .map(Role::realm)
            .collect();
        if let Some(Value::Object(clients)) = claims.get("resource_access") {
            for (client, access) in clients {
                roles.extend(
                    nested_roles(Some(access)).map(|name| Role::client(client.as_str(), name)),
                );
            }
        }
        Ok(identity(&claims)?.roles(roles).claims(claims).build())
    }
}

/// The string elements of the `roles` array inside `access` (a `realm_access` or
/// `resource_access.<client>` object); nothing when `access` is not an object, `roles` is not an
/// array, or an element is not a string. Never looks at flat dotted member names.
fn nested_roles(access: Option<&Value>) -> impl Iterator<Item = &str> {
    access
        .and_then(Value::as_object)
        .and_then(|access| access.get("roles"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
}

/// Roles read from one claim path, for identity providers other than Keycloak: Auth0-style
/// namespaced claims (`https://example.com/roles`), `groups`, `roles`, or a dotted path such as
/// `realm_access.roles`.
///
/// The path rule is [`Claims::path`]'s: a top-level key equal to the whole path wins, otherwise
/// the path is split on dots. That rule is deliberate here — the path is configured for one
/// issuer, and a namespaced claim name may itself contain dots — but it means a token that
/// carries both a flat `"a.b"` member and a nested `a` → `b` is read from the flat one. For
/// Keycloak tokens use [`KeycloakClaimMapper`], which only reads the nested form. The roles are
/// realm roles.
#[derive(Clone, Debug)]
pub struct ClaimPathMapper {
    path: Box<str>,
}

impl ClaimPathMapper {
    /// Reads roles from `path`.
    pub fn new(path: impl Into<Box<str>>) -> Self {
        Self { path: path.into() }
    }

    /// The configured claim path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl ClaimMapper for ClaimPathMapper {
    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        let roles: Vec<Role> = claims.strings_at(&self.path).map(Role::realm).collect();
        Ok(identity(&claims)?.roles(roles).claims(claims).build())
    }
}

/// The identity part shared by both mappers.
fn identity(claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
    let issuer = claims
        .issuer()?
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("iss")))?;
    let subject = claims
        .subject()?
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("sub")))?;
    let mut builder = Principal::builder(issuer, subject);
    if let Some(email) = claims.string("email")?.filter(|e| !e.is_empty()) {
        let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)));
        builder = builder.email(email, verified);
    }
    if let Some(name) = claims.string("preferred_username")? {
        builder = builder.username(name);
    }
    let service_client = match claims.string("client_id")? {
        Some(id) => Some(id),
        None => claims.string("clientId")?,
    };
    if let Some(client) = claims.authorized_party()?.or(service_client) {
        builder = builder.client_id(client);
    }
    builder = builder.service_account(service_client.is_some());
    if let Some(scope) = claims.string("scope")? {
        builder = builder.scopes(scope.split_ascii_whitespace());
    } else if let Some(Value::Array(scp)) = claims.get("scp") {
        builder = builder.scopes(scp.iter().filter_map(Value::as_str));
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::try_from(v).unwrap()
    }

    #[test]
    fn keycloak_service_account_token() {
        let p = KeycloakClaimMapper::new()
            .map(claims(json!({
                "iss": "http://kc/realms/agentcube", "sub": "sa-uuid", "typ": "Bearer",
                "azp": "agentcube-app", "client_id": "agentcube-app", "scope": "profile email",
                "email_verified": false, "preferred_username": "service-account-agentcube-app",
                "realm_access": {"roles": ["sandbox:invoke", "default-roles-agentcube"]},
                "resource_access": {"account": {"roles": ["manage-account"]}},
            })))
            .unwrap();
        assert_eq!(p.issuer(), "http://kc/realms/agentcube");
        assert_eq!(p.subject(), "sa-uuid");
        assert_eq!(p.email(), None);
        assert_eq!(p.client_id(), Some("agentcube-app"));
        assert!(p.is_service_account());
        assert!(p.has_scope("email") && !p.has_scope("openid"));
        assert!(p.roles().contains_realm("sandbox:invoke"));
        assert!(
            p.roles()
                .contains(&Role::client("account", "manage-account"))
        );
        assert!(!p.roles().contains_realm("manage-account"));
        assert_eq!(p.username(), Some("service-account-agentcube-app"));
    }

    #[test]
    fn client_roles_stay_namespaced() {
        let p = KeycloakClaimMapper::new()
            .map(claims(json!({
                "iss": "i", "sub": "s",
                "resource_access": {"other": {"roles": ["admin", 7]}, "bad": "x", "worse": {"roles": "y"}},
            })))
            .unwrap();
        assert!(!p.roles().contains_realm("admin"));
        assert!(p.roles().contains(&Role::client("other", "admin")));
        assert_eq!(p.roles().len(), 1);
    }

    #[test]
    fn client_id_falls_back_from_azp_to_client_id_to_camel_case() {
        let m = KeycloakClaimMapper::new();
        let p = m
            .map(claims(json!({"iss": "i", "sub": "s", "clientId": "old"})))
            .unwrap();
        assert_eq!(p.client_id(), Some("old"));
        assert!(p.is_service_account());
        let p = m
            .map(claims(
                json!({"iss": "i", "sub": "s", "client_id": "new", "clientId": "old"}),
            ))
            .unwrap();
        assert_eq!(p.client_id(), Some("new"));
        let p = m
            .map(claims(json!({"iss": "i", "sub": "s", "azp": "cli"})))
            .unwrap();
        assert_eq!(p.client_id(), Some("cli"));
        assert!(!p.is_service_account());
    }

    #[test]
    fn email_is_verified_only_when_the_issuer_says_true() {
        let m = KeycloakClaimMapper::new();
        let p = m
            .map(claims(
                json!({"iss": "i", "sub": "s", "email": "a@x", "email_verified": "true"}),
            ))
            .unwrap();
        assert_eq!(p.email(), Some("a@x"));
        assert_eq!(p.verified_email(), None);
        let p = m
            .map(claims(
                json!({"iss": "i", "sub": "s", "email": "a@x", "email_verified": true}),
            ))
            .unwrap();
        assert_eq!(p.verified_email(), Some("a@x"));
    }

    #[test]
    fn identity_claims_are_required_and_typed() {
        let m = KeycloakClaimMapper::new();
        let cases = [
            (json!({"sub": "s"}), ErrorCode::MissingClaim),
            (json!({"iss": "i"}), ErrorCode::MissingClaim),
            (json!({"iss": "i", "sub": ""}), ErrorCode::MissingClaim),
            (json!({"iss": "i", "sub": 5}), ErrorCode::InvalidClaim),
            (
                json!({"iss": "i", "sub": "s", "email": ["x"]}),
                ErrorCode::InvalidClaim,
            ),
            (
                json!({"iss": "i", "sub": "s", "azp": 1}),
                ErrorCode::InvalidClaim,
            ),
        ];
        for (c, code) in cases {
            assert_eq!(m.map(claims(c.clone())).unwrap_err().code(), code, "{c}");
        }
    }

    #[test]
    fn claim_path_mapper_reads_namespaced_groups_and_nested_paths() {
        let c = json!({
            "iss": "https://tenant.auth0.com/", "sub": "auth0|1",
            "https://example.com/roles": ["admin"], "groups": ["g1"], "scp": ["read", 5],
            "realm_access": {"roles": ["sandbox:invoke"]},
        });
        let p = ClaimPathMapper::new("https://example.com/roles")
            .map(claims(c.clone()))
            .unwrap();
        assert!(p.roles().contains_realm("admin"));
        assert_eq!(p.roles().len(), 1);
        assert!(p.has_scope("read"));
        let p = ClaimPathMapper::new("groups")
            .map(claims(c.clone()))
            .unwrap();
        assert!(p.roles().contains_realm("g1"));
        let p = ClaimPathMapper::new("realm_access.roles")
            .map(claims(c.clone()))
            .unwrap();
        assert!(p.roles().contains_realm("sandbox:invoke"));
        let p = ClaimPathMapper::new("missing.path").map(claims(c)).unwrap();
        assert!(p.roles().is_empty());
    }
}
