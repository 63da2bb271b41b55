//! Building blocks of the example programs, shared by the binaries, the quickstart and the
//! end-to-end tests.
//!
//! Each service is a library module with a configuration struct, an `app(...)` returning an
//! [`axum::Router`] (generic over its verifier or key source) and a `serve(...)` helper that
//! binds `127.0.0.1:0`, so the binaries, the quickstart and the tests run the very same code:
//!
//! - [`router`]: the public edge (access tokens, roles, ownership, identity forwarding, proxy);
//! - [`workload_manager`]: creates sessions and records their owners;
//! - [`sandbox`]: verifies the session-bound sandbox token and echoes the request;
//! - [`dev_idp`]: a development IdP for the realm in `deploy/keycloak/`;
//! - [`stack`]: all three services wired together in one process;
//! - [`scenario`]: the quickstart's request matrix, also run by the end-to-end tests;
//! - [`quickstart`]: the quickstart's set-up (dev IdP or real issuer, stack, scenario);
//! - [`cli`]: the service binaries' shared flags, serving and `main`.

pub mod cli;
pub mod dev_idp;
pub mod keys;
pub mod quickstart;
pub mod router;
pub mod sandbox;
pub mod scenario;
pub mod server;
pub mod stack;
pub mod workload_manager;

use std::sync::Arc;

use agentcube_auth_core::{HierarchyError, Role, RoleHierarchy};
use agentcube_rlac::{OwnerIdScheme, OwnerPolicy};

/// The realm export of `deploy/keycloak/agentcube-realm.json`, compiled in: the roles, clients
/// and mappers the dev IdP serves.
pub const AGENTCUBE_REALM_JSON: &str = include_str!("../../deploy/keycloak/agentcube-realm.json");

/// The role hierarchy of the compiled-in realm's composites (`admin` ⇒ `sandbox:manage` ⇒
/// `sandbox:invoke`; the default role `default-roles-agentcube` implies nothing).
///
/// The services do not use it unless told to (`--role-hierarchy-file`): Keycloak already puts
/// a caller's effective roles into the token, so the services trust the token's roles as they
/// are (see [`hierarchy_from_file`]). It is for tests and for library users whose issuer does
/// not expand composites.
///
/// The compiled-in realm always parses (tested); the flat fallback only keeps this function
/// total.
pub fn realm_hierarchy() -> RoleHierarchy {
    RoleHierarchy::from_keycloak_realm_json(AGENTCUBE_REALM_JSON)
        .unwrap_or_else(|_| RoleHierarchy::flat())
}

/// The ownership policy the Router and the workload manager share: `admin_role` (a realm role,
/// through `hierarchy`) bypasses ownership, and owner ids are formed by `scheme`.
pub(crate) fn owner_policy(
    hierarchy: &Arc<RoleHierarchy>,
    admin_role: &str,
    scheme: OwnerIdScheme,
) -> OwnerPolicy {
    OwnerPolicy::new(Arc::clone(hierarchy))
        .with_admin_role(Role::realm(admin_role))
        .with_owner_scheme(scheme)
}

/// The role hierarchy of the services' `--role-hierarchy-file`: the composites of a Keycloak
/// realm export at `path`, or, without a file, the flat hierarchy.
///
/// **Flat by default.** Keycloak expands composite roles into the token when it issues it, so
/// a token's roles are already the caller's effective roles, and the required role and the
/// admin role are checked against them as they are. Expanding them again through a realm file
/// read at start-up would override Keycloak: after an operator removes a role from a
/// composite (say `sandbox:invoke` from the default role) in Keycloak, the services would keep
/// granting it until someone updated the file. A hierarchy file is for issuers that do not
/// expand composites. Even then the realm's default role (`default-roles-*`, which every user
/// holds) implies nothing.
///
/// # Errors
/// An unreadable file or an invalid realm (e.g. a cycle of composites).
pub fn hierarchy_from_file(path: Option<&std::path::Path>) -> Result<RoleHierarchy, String> {
    match path {
        None => Ok(RoleHierarchy::flat()),
        Some(path) => {
            let json =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            RoleHierarchy::from_keycloak_realm_json(&json)
                .map_err(|e: HierarchyError| format!("{}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use agentcube_auth_core::RoleSet;

    fn held(roles: &[&str]) -> RoleSet {
        roles.iter().map(|r| Role::realm(*r)).collect()
    }

    #[test]
    fn without_a_file_the_token_roles_are_taken_as_they_are() {
        let flat = hierarchy_from_file(None).unwrap();
        let invoke = Role::realm("sandbox:invoke");
        assert!(!flat.grants(&held(&["admin"]), &invoke));
        assert!(!flat.grants(&held(&["default-roles-agentcube"]), &invoke));
        assert!(flat.grants(&held(&["sandbox:invoke"]), &invoke));
    }

    #[test]
    fn a_hierarchy_file_expands_composites_but_never_the_default_role() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/keycloak/agentcube-realm.json"
        );
        let file = hierarchy_from_file(Some(std::path::Path::new(path))).unwrap();
        let invoke = Role::realm("sandbox:invoke");
        assert!(file.grants(&held(&["admin"]), &invoke));
        assert!(!file.grants(&held(&["default-roles-agentcube"]), &invoke));
        let missing = hierarchy_from_file(Some(std::path::Path::new("/nonexistent/realm.json")));
        assert!(
            missing
                .unwrap_err()
                .starts_with("/nonexistent/realm.json: ")
        );
    }

    #[test]
    fn the_compiled_in_realm_gives_the_admin_chain() {
        let hierarchy = RoleHierarchy::from_keycloak_realm_json(AGENTCUBE_REALM_JSON);
        assert!(hierarchy.is_ok(), "{:?}", hierarchy.err());
        let hierarchy = realm_hierarchy();
        assert!(hierarchy.implies(&Role::realm("admin"), &Role::realm("sandbox:manage")));
        assert!(hierarchy.implies(&Role::realm("admin"), &Role::realm("sandbox:invoke")));
        assert!(hierarchy.implies(
            &Role::realm("sandbox:manage"),
            &Role::realm("sandbox:invoke")
        ));
    }
}
