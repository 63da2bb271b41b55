//! Turning verified claims into a [`Principal`]: the extension point for identity providers.
//!
//! Every mapper here starts from one step, [`StandardClaims::read`], which holds the rules for
//! the claims all issuers share; the provided mappers add roles, and a service's own mapper adds
//! what its issuer puts elsewhere (roles under a namespaced claim, a tenant, permissions).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::claims::Claims;
use crate::error::AuthError;
use crate::jose::strict_json::NestedReader;
use crate::keycloak_roles::{AccessRoles, ClientRoles};
use crate::principal::{Principal, PrincipalBuilder};
use crate::role::Role;

/// Maps the claims of a verified token to a [`Principal`].
///
/// Verifiers call [`ClaimMapper::map`] after every signature and claim check has passed.
/// Implement [`ClaimMapper::map_builder`] to support an identity provider whose tokens are
/// shaped differently: start from [`StandardClaims::read`] and add roles, permissions and
/// [extensions](PrincipalBuilder::extension). To add to what another mapper produces, wrap it
/// with [`ClaimMapper::and_then`].
///
/// A mapper refuses a token with an [`AuthError`]: [`AuthError::MissingClaim`] or
/// [`AuthError::InvalidClaim`] when the claims cannot describe a principal, or
/// [`AuthError::Custom`] with a code and status of the service's own (a suspended tenant).
pub trait ClaimMapper: Send + Sync {
    /// Reads the principal from `claims`, as a builder that a wrapping mapper can extend.
    ///
    /// # Errors
    /// Any [`AuthError`]; see the trait documentation.
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError>;

    /// Builds the principal: [`ClaimMapper::map_builder`], then the claims are attached.
    ///
    /// # Errors
    /// As [`ClaimMapper::map_builder`].
    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        Ok(self.map_builder(&claims)?.claims(claims).build())
    }

    /// This mapper followed by `step`, which receives the claims and this mapper's builder and
    /// may add to it or refuse.
    ///
    /// ```
    /// use agentcube_auth_core::{ClaimMapper, ClaimPathMapper, Claims};
    /// use serde_json::json;
    ///
    /// struct Tenant(String);
    ///
    /// let mapper = ClaimPathMapper::new("https://example.com/roles").and_then(|claims, builder| {
    ///     let tenant = claims.string("org_id")?.unwrap_or_default();
    ///     Ok(builder.extension(Tenant(tenant.to_owned())))
    /// });
    /// let principal = mapper.map(Claims::try_from(json!({
    ///     "iss": "https://tenant.example/", "sub": "auth0|1", "org_id": "acme",
    ///     "https://example.com/roles": ["admin"],
    /// }))?)?;
    /// assert!(principal.has_role("admin"));
    /// assert_eq!(principal.extension::<Tenant>().map(|t| t.0.as_str()), Some("acme"));
    /// # Ok::<(), agentcube_auth_core::AuthError>(())
    /// ```
    fn and_then<F>(self, step: F) -> AndThen<Self, F>
    where
        Self: Sized,
        F: Fn(&Claims, PrincipalBuilder) -> Result<PrincipalBuilder, AuthError> + Send + Sync,
    {
        AndThen { mapper: self, step }
    }
}

impl<M: ClaimMapper + ?Sized> ClaimMapper for std::sync::Arc<M> {
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        (**self).map_builder(claims)
    }

    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        (**self).map(claims)
    }
}

impl<M: ClaimMapper + ?Sized> ClaimMapper for Box<M> {
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        (**self).map_builder(claims)
    }

    fn map(&self, claims: Claims) -> Result<Principal, AuthError> {
        (**self).map(claims)
    }
}

/// A mapper followed by a step of the service's own; built by [`ClaimMapper::and_then`].
#[derive(Clone)]
pub struct AndThen<M, F> {
    mapper: M,
    step: F,
}

impl<M, F> AndThen<M, F> {
    /// The wrapped mapper.
    pub fn get_ref(&self) -> &M {
        &self.mapper
    }
}

impl<M: fmt::Debug, F> fmt::Debug for AndThen<M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AndThen")
            .field("mapper", &self.mapper)
            .field("step", &std::any::type_name::<F>())
            .finish()
    }
}

impl<M, F> ClaimMapper for AndThen<M, F>
where
    M: ClaimMapper,
    F: Fn(&Claims, PrincipalBuilder) -> Result<PrincipalBuilder, AuthError> + Send + Sync,
{
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        (self.step)(claims, self.mapper.map_builder(claims)?)
    }
}

/// The claims every issuer shares, read by the one set of rules that every mapper in this
/// crate starts from. As a mapper of its own it produces a principal without roles.
///
/// | claim | becomes | rule |
/// |---|---|---|
/// | `iss` | [`Principal::issuer`] | required string |
/// | `sub` | [`Principal::subject`] | required non-empty string |
/// | `email` | [`Principal::email`] | string; empty is absent |
/// | `email_verified` | [`Principal::email_verified`] | only the JSON `true` verifies |
/// | `preferred_username` | [`Principal::username`] | string |
/// | `azp`, else `client_id`, else `clientId` | [`Principal::client_id`] | string |
/// | `client_id` or `clientId` present | [`Principal::is_service_account`] | Keycloak's service-account marker |
/// | `scope`, else `scp` | [`Principal::scopes`] | space-separated string; `scp`: the strings of an array |
///
/// Any of these claims present with the wrong JSON type is [`AuthError::InvalidClaim`] (a
/// `null` counts as absent); a missing `iss` or `sub` is [`AuthError::MissingClaim`].
///
/// An issuer that puts `client_id` into every access token (RFC 9068 does) would mark every
/// principal a service account; a mapper for such an issuer sets
/// [`PrincipalBuilder::service_account`] itself in a step after this one.
///
/// ```
/// use agentcube_auth_core::{Claims, StandardClaims};
/// use serde_json::json;
///
/// let claims = Claims::try_from(json!({
///     "iss": "https://issuer.example/", "sub": "user-1", "azp": "web",
///     "scope": "openid read:reports", "email": "a@example.com", "email_verified": true,
/// }))?;
/// let principal = StandardClaims::read(&claims)?.build();
/// assert_eq!(principal.subject(), "user-1");
/// assert_eq!(principal.client_id(), Some("web"));
/// assert!(principal.has_scope("read:reports") && !principal.is_service_account());
/// assert_eq!(principal.verified_email(), Some("a@example.com"));
/// # Ok::<(), agentcube_auth_core::AuthError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct StandardClaims;

impl StandardClaims {
    /// Reads the standard claims into a builder; see the type's documentation for the rules.
    ///
    /// # Errors
    /// [`AuthError::MissingClaim`] without `iss` or a non-empty `sub`;
    /// [`AuthError::InvalidClaim`] for a standard claim of the wrong type.
    pub fn read(claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        let issuer = claims
            .issuer()?
            .ok_or(AuthError::MissingClaim(Cow::Borrowed("iss")))?;
        let subject = claims
            .subject()?
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::MissingClaim(Cow::Borrowed("sub")))?;
        let mut builder = Principal::builder(issuer, subject);
        if let Some(email) = claims.string("email")?.filter(|e| !e.is_empty()) {
            let verified = matches!(claims.boolean("email_verified"), Ok(Some(true)));
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
}

impl ClaimMapper for StandardClaims {
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        Self::read(claims)
    }
}

/// Keycloak access tokens: the [`StandardClaims`], realm roles from `realm_access.roles`, client
/// roles from `resource_access.<client>.roles` kept as [`Role::client`] so that another client's
/// `admin` is never the realm's `admin`.
///
/// Both are read as Keycloak writes them, nested: the `roles` array inside the object member
/// `realm_access` (or inside `resource_access` → `<client>`). A top-level member whose name
/// merely contains the dots — `"realm_access.roles": ["admin"]`, which a custom protocol mapper
/// or a user attribute could put into a token — grants nothing. (This is where the mapper
/// differs from [`ClaimPathMapper`], whose configured path prefers such a flat member.)
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
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        // The standard claims first: a token without `iss` or `sub` is refused before its
        // roles are read.
        let builder = StandardClaims::read(claims)?;
        // Read with serde seeds straight from the claims (for a token, from the JSON text of
        // each object), so no map is built for the roles. The seeds accept any shape and read
        // nothing from one they do not expect; an error could only be malformed JSON, which
        // parsing has excluded, and would drop that claim's roles rather than half of them.
        // Room for a typical token's roles, so the vector is allocated once.
        let mut roles = Vec::with_capacity(8);
        let realm = AccessRoles {
            out: &mut roles,
            client: None,
        };
        if let Some(Err(_)) = claims.deserialize_seed("realm_access", realm, NestedReader::Checked)
        {
            roles.clear();
        }
        let realm_roles = roles.len();
        if let Some(Err(_)) = claims.deserialize_seed(
            "resource_access",
            ClientRoles { out: &mut roles },
            NestedReader::Checked,
        ) {
            roles.truncate(realm_roles);
        }
        Ok(builder.roles(roles))
    }
}

/// The [`StandardClaims`], plain roles read from one claim path and, optionally, permissions
/// from another: for identity providers other than Keycloak — Auth0-style namespaced claims
/// (`https://example.com/roles`) and `permissions`, `groups`, `roles`, or a dotted path such as
/// `realm_access.roles`.
///
/// The path rule is [`Claims::path`]'s: a top-level key equal to the whole path wins, otherwise
/// the path is split on dots. That rule is deliberate here — the path is configured for one
/// issuer, and a namespaced claim name may itself contain dots — but it means a token that
/// carries both a flat `"a.b"` member and a nested `a` → `b` is read from the flat one. For
/// Keycloak tokens use [`KeycloakClaimMapper`], which only reads the nested form. A missing
/// path or a value that is not an array gives no roles (no permissions); elements that are not
/// strings are skipped.
///
/// ```
/// use agentcube_auth_core::{ClaimMapper, ClaimPathMapper, Claims};
/// use serde_json::json;
///
/// let mapper = ClaimPathMapper::new("https://example.com/roles").with_permissions("permissions");
/// let principal = mapper.map(Claims::try_from(json!({
///     "iss": "https://tenant.example/", "sub": "auth0|1",
///     "https://example.com/roles": ["admin"], "permissions": ["read:reports"],
/// }))?)?;
/// assert!(principal.has_role("admin"));
/// assert!(principal.has_permission("read:reports"));
/// # Ok::<(), agentcube_auth_core::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClaimPathMapper {
    path: Box<str>,
    permissions: Option<Box<str>>,
}

impl ClaimPathMapper {
    /// Reads roles from `path`.
    pub fn new(path: impl Into<Box<str>>) -> Self {
        Self {
            path: path.into(),
            permissions: None,
        }
    }

    /// Also reads permissions from `path` (Auth0: `permissions`).
    pub fn with_permissions(mut self, path: impl Into<Box<str>>) -> Self {
        self.permissions = Some(path.into());
        self
    }

    /// The configured roles claim path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The configured permissions claim path, if any.
    pub fn permissions_path(&self) -> Option<&str> {
        self.permissions.as_deref()
    }
}

impl ClaimMapper for ClaimPathMapper {
    fn map_builder(&self, claims: &Claims) -> Result<PrincipalBuilder, AuthError> {
        let mut builder =
            StandardClaims::read(claims)?.roles(claims.strings_at(&self.path).map(Role::new));
        if let Some(path) = &self.permissions {
            builder = builder.permissions(claims.strings_at(path));
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::try_from(v).unwrap()
    }

    use crate::claims::from_payload_text as token_claims;

    #[test]
    fn keycloak_roles_read_from_a_token_match_roles_read_from_a_map() {
        // Each shape with the roles the rule gives it, written out here rather than derived,
        // so that a rule bug the two readers shared would still fail.
        let realm = |names: &[&str]| names.iter().map(|n| Role::realm(*n)).collect::<Vec<_>>();
        let shapes: [(&str, Vec<Role>); 17] = [
            (r#""#, vec![]),
            (r#","realm_access":{"roles":["a","b"]}"#, realm(&["a", "b"])),
            (
                r#","realm_access":{"roles":["a",1,null,{"x":["y"]},["z"],"b",true,2.5]}"#,
                realm(&["a", "b"]),
            ),
            (
                r#","realm_access":{"other":["x"],"roles":["a"],"more":{"roles":["nested"]}}"#,
                realm(&["a"]),
            ),
            (r#","realm_access":{"roles":"admin"}"#, vec![]),
            (r#","realm_access":{"roles":{"admin":true}}"#, vec![]),
            (r#","realm_access":["admin"]"#, vec![]),
            (r#","realm_access":"admin""#, vec![]),
            (r#","realm_access":null"#, vec![]),
            (r#","realm_access.roles":["admin"]"#, vec![]),
            (
                r#","resource_access":{"app":{"roles":["admin"]},"web":{"roles":["read",5]}}"#,
                vec![Role::client("app", "admin"), Role::client("web", "read")],
            ),
            (
                r#","resource_access":{"app":["admin"],"web":"x","api":{"roles":["w"]}}"#,
                vec![Role::client("api", "w")],
            ),
            (r#","resource_access":["admin"]"#, vec![]),
            (
                r#","resource_access":{"app":{"roles":["a"]}},"realm_access":{"roles":["a"]}"#,
                vec![Role::client("app", "a"), Role::realm("a")],
            ),
            // Whitespace around the colon, and escapes in names and values.
            (
                " ,\n \"realm_access\" \t:\r\n {\"roles\" : [ \"ws\" ] } ",
                realm(&["ws"]),
            ),
            (r#","realm_\u0061ccess":{"roles":["esc"]}"#, realm(&["esc"])),
            (
                r#","resource_access":{"\u0061pp":{"r\u006fles":["x\"y","\u00e9"]}}"#,
                vec![Role::client("app", "x\"y"), Role::client("app", "é")],
            ),
        ];
        let mapper = KeycloakClaimMapper::new();
        for (shape, expected) in shapes {
            let text = format!(r#"{{"iss":"https://idp","sub":"u"{shape}}}"#);
            let from_map = mapper
                .map(claims(serde_json::from_str(&text).unwrap()))
                .unwrap();
            let from_token = mapper.map(token_claims(&text)).unwrap();
            let expected: crate::RoleSet = expected.into_iter().collect();
            assert_eq!(from_token.roles(), &expected, "{text}");
            assert_eq!(from_token.roles(), from_map.roles(), "{text}");
        }
        let escaped = mapper
            .map(token_claims(
                r#"{"iss":"i","sub":"u","resource_access":{"\u0061pp":{"r\u006fles":["x\"y"]}}}"#,
            ))
            .unwrap();
        assert!(escaped.roles().contains(&Role::client("app", "x\"y")));
        let spaced = mapper
            .map(token_claims(
                "{\"iss\":\"i\",\"sub\":\"u\",\"realm_access\" \t:\r\n {\"roles\" : [ \"ws\" ] } }",
            ))
            .unwrap();
        assert!(spaced.has_role("ws"));
    }

    #[test]
    fn claims_read_from_a_token_answer_like_claims_built_from_a_map() {
        let text = r#"{"iss":"https://idp","sub":"u","aud":["a","b"],"exp":1700000000.5,
            "email":"ada@example.com","email_verified":true,"esc":"\u0041\/b","n":null,
            "obj":{"k":[1,{"z":null}]},"num":5,"flag":"yes","arr":[1,"x"],
            "realm_access":{"roles":["r"]}}"#;
        let map: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
        let built = Claims::new(map.clone());
        let parsed = token_claims(text);
        for name in map.keys().map(String::as_str).chain(["missing"]) {
            assert_eq!(parsed.string(name), built.string(name), "{name}");
            assert_eq!(
                parsed.numeric_date(name),
                built.numeric_date(name),
                "{name}"
            );
            assert_eq!(parsed.boolean(name), built.boolean(name), "{name}");
            assert_eq!(parsed.contains(name), built.contains(name), "{name}");
            assert_eq!(
                parsed.deserialize::<Value>(name).unwrap(),
                built.deserialize::<Value>(name).unwrap(),
                "{name}"
            );
            assert_eq!(parsed.get(name), built.get(name), "{name}");
        }
        assert_eq!(
            parsed.audience().unwrap().iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(parsed.string("esc").unwrap(), Some("A/b"));
        assert_eq!(
            parsed.boolean("flag").unwrap_err().code(),
            ErrorCode::InvalidClaim
        );
        assert_eq!(
            parsed.deserialize::<u32>("email").unwrap_err().code(),
            ErrorCode::InvalidClaim
        );
        assert_eq!(parsed, built);
        assert_eq!(parsed.as_map(), &map);
        assert_eq!(token_claims(text).into_map(), map);
        assert_eq!(
            parsed.strings_at("realm_access.roles").collect::<Vec<_>>(),
            ["r"]
        );
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

    #[test]
    fn every_mapper_applies_the_same_standard_rules() {
        let mappers: [&dyn ClaimMapper; 3] = [
            &StandardClaims,
            &KeycloakClaimMapper::new(),
            &ClaimPathMapper::new("roles").with_permissions("permissions"),
        ];
        for m in mappers {
            for (c, code) in [
                (json!({"sub": "s"}), ErrorCode::MissingClaim),
                (json!({"iss": "i", "sub": ""}), ErrorCode::MissingClaim),
                (
                    json!({"iss": "i", "sub": "s", "scope": 1}),
                    ErrorCode::InvalidClaim,
                ),
                (
                    json!({"iss": "i", "sub": "s", "clientId": []}),
                    ErrorCode::InvalidClaim,
                ),
            ] {
                assert_eq!(m.map(claims(c.clone())).unwrap_err().code(), code, "{c}");
            }
            let p = m
                .map(claims(
                    json!({"iss": "i", "sub": "s", "azp": "web", "scope": "a b"}),
                ))
                .unwrap();
            assert_eq!(p.client_id(), Some("web"));
            assert!(p.has_scope("b") && !p.is_service_account());
            assert_eq!(p.claims().get("azp"), Some(&json!("web")));
        }
    }

    #[test]
    fn and_then_extends_the_builder_and_can_refuse() {
        let m = KeycloakClaimMapper::new().and_then(|c, b| match c.string("tenant")? {
            Some("closed") => Err(AuthError::InvalidClaim("tenant".into())),
            Some(t) => Ok(b.extension(t.to_owned()).add_roles([Role::new("member")])),
            None => Ok(b),
        });
        let p = m
            .map(claims(json!({
                "iss": "i", "sub": "s", "tenant": "acme",
                "realm_access": {"roles": ["admin"]},
            })))
            .unwrap();
        assert_eq!(p.extension::<String>().map(String::as_str), Some("acme"));
        assert!(p.has_role("admin") && p.has_role("member"));
        let err = m
            .map(claims(json!({"iss": "i", "sub": "s", "tenant": "closed"})))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidClaim);
        assert!(format!("{m:?}").contains("KeycloakClaimMapper"));
    }
}
