//! What a caller must hold: roles, scopes and permissions, any of several or all of several.

use crate::error::AuthError;
use crate::hierarchy::RoleHierarchy;
use crate::principal::Principal;
use crate::role::Role;

/// What a caller must hold, evaluated against a [`Principal`]; roles through a
/// [`RoleHierarchy`].
///
/// Three kinds of grant, freely combined with [`Requirement::any_of`] and
/// [`Requirement::all_of`]:
///
/// | requirement | satisfied when | refused with (403) |
/// |---|---|---|
/// | [`Requirement::role`] | the principal holds the role, directly or through the hierarchy | [`AuthError::InsufficientRole`] |
/// | [`Requirement::scope`] | [`Principal::has_scope`] (the token's `scope`) | [`AuthError::InsufficientScope`], challenge `Bearer error="insufficient_scope", scope="<scope>"` |
/// | [`Requirement::permission`] | [`Principal::has_permission`] (the permissions claim the mapper read) | [`AuthError::InsufficientPermission`] |
///
/// A refusal names one grant that was missing: for `AllOf` the first unmet requirement's, for
/// `AnyOf` the first alternative's. `AnyOf` with no alternatives is never satisfied (fail
/// closed); `AllOf` with none always is. Checking allocates nothing unless it refuses.
///
/// ```
/// use agentcube_auth_core::{ErrorCode, Principal, Rejection, Requirement, RoleHierarchy};
///
/// let admin_write = Requirement::any_of([
///     Requirement::role("admin"),
///     Requirement::all_of([Requirement::scope("admin:write"), Requirement::permission("admin:write")]),
/// ]);
/// let flat = RoleHierarchy::flat();
/// let writer = Principal::builder("https://issuer.example/", "u-1")
///     .scopes(["admin:write"])
///     .permissions(["admin:write"])
///     .build();
/// assert!(admin_write.check(&writer, &flat).is_ok());
///
/// // Granted the scope but not the permission: refused, naming the first alternative's grant.
/// let reader = Principal::builder("https://issuer.example/", "u-2")
///     .scopes(["admin:write"])
///     .permissions(["read:reports"])
///     .build();
/// let err = admin_write.check(&reader, &flat).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::InsufficientRole);
///
/// let err = Requirement::scope("reports:export").check(&reader, &flat).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::InsufficientScope);
/// assert_eq!(
///     err.challenge().as_deref(),
///     Some(r#"Bearer error="insufficient_scope", scope="reports:export""#)
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// Hold this role (directly or through the hierarchy).
    Role(Role),
    /// Have been granted this OAuth scope.
    Scope(Box<str>),
    /// Have been granted this permission.
    Permission(Box<str>),
    /// Satisfy at least one of these.
    AnyOf(Vec<Requirement>),
    /// Satisfy every one of these.
    AllOf(Vec<Requirement>),
}

impl Requirement {
    /// Requires a role: a name (`Requirement::role("admin")`, a plain role) or any [`Role`].
    pub fn role(role: impl Into<Role>) -> Self {
        Self::Role(role.into())
    }

    /// Requires a Keycloak realm role by name: the same as [`Requirement::role`] with a name.
    pub fn realm_role(name: impl AsRef<str>) -> Self {
        Self::Role(Role::realm(name))
    }

    /// Requires an OAuth scope (from the token's `scope` or `scp`).
    pub fn scope(scope: impl Into<Box<str>>) -> Self {
        Self::Scope(scope.into())
    }

    /// Requires a permission (from the permissions claim the mapper read, such as Auth0's
    /// `permissions`; see [`ClaimPathMapper::with_permissions`](crate::ClaimPathMapper::with_permissions)).
    pub fn permission(permission: impl Into<Box<str>>) -> Self {
        Self::Permission(permission.into())
    }

    /// Requires at least one of `requirements`.
    pub fn any_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AnyOf(requirements.into_iter().collect())
    }

    /// Requires all of `requirements`.
    pub fn all_of(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Self::AllOf(requirements.into_iter().collect())
    }

    /// Whether `principal` satisfies the requirement. Allocation-free.
    pub fn is_satisfied_by(&self, principal: &Principal, hierarchy: &RoleHierarchy) -> bool {
        self.first_missing(principal, hierarchy).is_none()
    }

    /// Checks the requirement.
    ///
    /// # Errors
    /// [`AuthError::InsufficientRole`], [`AuthError::InsufficientScope`] or
    /// [`AuthError::InsufficientPermission`] naming a missing grant (for `AnyOf`, the first
    /// alternative's).
    pub fn check(&self, principal: &Principal, hierarchy: &RoleHierarchy) -> Result<(), AuthError> {
        match self.first_missing(principal, hierarchy) {
            None => Ok(()),
            Some(Missing::Role(role)) => Err(AuthError::InsufficientRole(role.clone())),
            Some(Missing::Scope(scope)) => Err(AuthError::InsufficientScope(scope.into())),
            Some(Missing::Permission(permission)) => {
                Err(AuthError::InsufficientPermission(permission.into()))
            }
        }
    }

    /// `None` when satisfied; otherwise a grant that would have helped.
    fn first_missing<'a>(
        &'a self,
        principal: &Principal,
        hierarchy: &RoleHierarchy,
    ) -> Option<Missing<'a>> {
        match self {
            Self::Role(role) => {
                (!hierarchy.grants(principal.roles(), role)).then_some(Missing::Role(role))
            }
            Self::Scope(scope) => (!principal.has_scope(scope)).then_some(Missing::Scope(scope)),
            Self::Permission(permission) => {
                (!principal.has_permission(permission)).then_some(Missing::Permission(permission))
            }
            Self::AllOf(all) => all
                .iter()
                .find_map(|r| r.first_missing(principal, hierarchy)),
            Self::AnyOf(any) => {
                let mut first = None;
                for r in any {
                    match r.first_missing(principal, hierarchy) {
                        None => return None,
                        Some(missing) => {
                            first.get_or_insert(missing);
                        }
                    }
                }
                // An empty AnyOf cannot name a grant; report a role nobody can hold.
                Some(first.unwrap_or(Missing::Role(&NOTHING)))
            }
        }
    }
}

/// What a refused requirement lacked.
#[derive(Clone, Copy)]
enum Missing<'a> {
    Role(&'a Role),
    Scope(&'a str),
    Permission(&'a str),
}

/// Reported when an empty `AnyOf` is evaluated; no principal can hold it.
static NOTHING: std::sync::LazyLock<Role> =
    std::sync::LazyLock::new(|| Role::realm("<any of no roles>"));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn principal(roles: &[Role]) -> Principal {
        Principal::builder("https://idp", "u1")
            .roles(roles.iter().cloned())
            .build()
    }

    fn hierarchy() -> RoleHierarchy {
        RoleHierarchy::from_pairs([
            (Role::realm("admin"), Role::realm("sandbox:manage")),
            (Role::realm("sandbox:manage"), Role::realm("sandbox:invoke")),
        ])
        .unwrap()
    }

    #[test]
    fn role_requirement_through_hierarchy() {
        let h = hierarchy();
        let invoke = Requirement::realm_role("sandbox:invoke");
        assert!(invoke.is_satisfied_by(&principal(&[Role::realm("admin")]), &h));
        assert!(invoke.is_satisfied_by(&principal(&[Role::realm("sandbox:invoke")]), &h));
        let err = invoke.check(&principal(&[]), &h).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientRole);
        assert_eq!(
            err.to_string(),
            "insufficient permissions: missing role sandbox:invoke"
        );
        assert_eq!(err.http_status(), 403);
    }

    #[test]
    fn any_of_and_all_of() {
        let h = hierarchy();
        let any = Requirement::any_of([
            Requirement::realm_role("x"),
            Requirement::realm_role("sandbox:manage"),
        ]);
        assert!(any.is_satisfied_by(&principal(&[Role::realm("admin")]), &h));
        assert_eq!(
            any.check(&principal(&[Role::realm("sandbox:invoke")]), &h),
            Err(AuthError::InsufficientRole(Role::realm("x")))
        );
        let all = Requirement::all_of([
            Requirement::realm_role("sandbox:invoke"),
            Requirement::role(Role::client("api", "write")),
        ]);
        assert!(!all.is_satisfied_by(&principal(&[Role::realm("admin")]), &h));
        assert!(all.is_satisfied_by(
            &principal(&[Role::realm("admin"), Role::client("api", "write")]),
            &h
        ));
        assert_eq!(
            all.check(&principal(&[Role::realm("admin")]), &h),
            Err(AuthError::InsufficientRole(Role::client("api", "write")))
        );
    }

    #[test]
    fn scopes_and_permissions_combine_with_roles() {
        let h = hierarchy();
        let p = Principal::builder("https://idp", "u1")
            .roles([Role::new("sandbox:invoke")])
            .scopes(["read", "write"])
            .permissions(["reports:read"])
            .build();
        assert!(Requirement::scope("write").is_satisfied_by(&p, &h));
        assert!(Requirement::permission("reports:read").is_satisfied_by(&p, &h));
        // A scope is not a permission and neither is a role.
        assert!(!Requirement::permission("write").is_satisfied_by(&p, &h));
        assert!(!Requirement::scope("reports:read").is_satisfied_by(&p, &h));
        assert!(!Requirement::role("read").is_satisfied_by(&p, &h));
        let all = Requirement::all_of([
            Requirement::role("sandbox:invoke"),
            Requirement::scope("write"),
            Requirement::permission("reports:export"),
        ]);
        assert_eq!(
            all.check(&p, &h),
            Err(AuthError::InsufficientPermission("reports:export".into()))
        );
        let any = Requirement::any_of([Requirement::scope("admin"), Requirement::role("admin")]);
        let err = any.check(&p, &h).unwrap_err();
        assert_eq!(err, AuthError::InsufficientScope("admin".into()));
        assert_eq!(err.code(), ErrorCode::InsufficientScope);
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.to_string(),
            "insufficient permissions: missing scope admin"
        );
        assert!(
            Requirement::any_of([Requirement::scope("admin"), Requirement::scope("read")])
                .is_satisfied_by(&p, &h)
        );
    }

    #[test]
    fn empty_any_of_fails_closed_and_empty_all_of_passes() {
        let h = hierarchy();
        let p = principal(&[Role::realm("admin")]);
        assert!(!Requirement::any_of([]).is_satisfied_by(&p, &h));
        assert!(Requirement::all_of([]).is_satisfied_by(&p, &h));
    }
}
