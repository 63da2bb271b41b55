//! What a caller must hold: a role, any of several, or all of several.

use crate::error::AuthError;
use crate::hierarchy::RoleHierarchy;
use crate::principal::Principal;
use crate::role::Role;

/// A role requirement, evaluated against a [`Principal`] through a [`RoleHierarchy`].
///
/// `AnyOf` with no alternatives is never satisfied (fail closed); `AllOf` with none always is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// Hold this role (directly or through the hierarchy).
    Role(Role),
    /// Satisfy at least one of these.
    AnyOf(Vec<Requirement>),
    /// Satisfy every one of these.
    AllOf(Vec<Requirement>),
}

impl Requirement {
    /// Requires a role.
    pub fn role(role: Role) -> Self {
        Self::Role(role)
    }

    /// Requires a realm role by name (the common case: `sandbox:invoke`).
    pub fn realm_role(name: impl Into<Box<str>>) -> Self {
        Self::Role(Role::realm(name))
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
    /// [`AuthError::InsufficientRole`] naming a missing role (for `AnyOf`, the first
    /// alternative's).
    pub fn check(&self, principal: &Principal, hierarchy: &RoleHierarchy) -> Result<(), AuthError> {
        match self.first_missing(principal, hierarchy) {
            None => Ok(()),
            Some(role) => Err(AuthError::InsufficientRole(role.clone())),
        }
    }

    /// `None` when satisfied; otherwise a role that would have helped.
    fn first_missing<'a>(
        &'a self,
        principal: &Principal,
        hierarchy: &RoleHierarchy,
    ) -> Option<&'a Role> {
        match self {
            Self::Role(role) => (!hierarchy.grants(principal.roles(), role)).then_some(role),
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
                // An empty AnyOf cannot name a role; report a role nobody can hold.
                Some(first.unwrap_or(&NOTHING))
            }
        }
    }
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
    fn empty_any_of_fails_closed_and_empty_all_of_passes() {
        let h = hierarchy();
        let p = principal(&[Role::realm("admin")]);
        assert!(!Requirement::any_of([]).is_satisfied_by(&p, &h));
        assert!(Requirement::all_of([]).is_satisfied_by(&p, &h));
    }
}
