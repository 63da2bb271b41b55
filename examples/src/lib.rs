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
/// and mappers the dev IdP serves, and the default role hierarchy.
pub const AGENTCUBE_REALM_JSON: &str = include_str!("../../deploy/keycloak/agentcube-realm.json");

/// The role hierarchy of the realm (`admin` ⇒ `sandbox:manage` ⇒ `sandbox:invoke`).
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

/// The role hierarchy of a realm export file (`--realm-file`), or of the compiled-in realm.
///
/// # Errors
/// An unreadable file or an invalid realm (e.g. a cycle of composites).
pub fn hierarchy_from_file(path: Option<&std::path::Path>) -> Result<RoleHierarchy, String> {
    match path {
        None => Ok(realm_hierarchy()),
        Some(path) => {
            let json =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            RoleHierarchy::from_keycloak_realm_json(&json)
                .map_err(|e: HierarchyError| format!("{}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
