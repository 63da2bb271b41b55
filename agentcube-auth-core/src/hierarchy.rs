//! Roles that imply other roles (`admin` ⇒ `sandbox:manage` ⇒ `sandbox:invoke`).
//!
//! Keycloak expands composite roles into the token itself: a token lists the caller's
//! effective roles as Keycloak sees them when it issues the token. For Keycloak tokens the
//! right hierarchy is therefore [`RoleHierarchy::flat`] (the token's roles are trusted as they
//! are): a hierarchy read once from a realm export would keep granting what an operator has
//! since removed in Keycloak. A hierarchy is for issuers that do not expand composites, where it
//! is the only source of implied roles.
//!
//! Keycloak's default role (a realm role named `default-roles-<realm>`, which every user
//! holds) never implies anything here, even when a realm export lists composites for it: since
//! everyone holds it, expanding a stale copy of its composites would grant those roles to every
//! user, whatever Keycloak says today.
//!
//! The transitive closure is computed once when the hierarchy is built; a check afterwards is
//! one hash lookup plus a scan of a short slice, with no allocation.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::Value;

use crate::rejection::Code;
use crate::role::{Role, RoleSet};

/// Why a role hierarchy could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HierarchyError {
    /// A role implies itself through a chain of other roles.
    #[error("role hierarchy has a cycle: {}", display_cycle(.0))]
    Cycle(Vec<Role>),
    /// The Keycloak realm export does not have the expected shape.
    #[error("invalid keycloak realm export: {0}")]
    InvalidRealmExport(&'static str),
}

impl HierarchyError {
    /// A stable machine code: `role_hierarchy_cycle` or `invalid_realm_export`.
    pub const fn code(&self) -> Code {
        match self {
            Self::Cycle(_) => Code::new("role_hierarchy_cycle"),
            Self::InvalidRealmExport(_) => Code::new("invalid_realm_export"),
        }
    }
}

fn display_cycle(cycle: &[Role]) -> String {
    cycle
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Which roles imply which, with the transitive closure precomputed.
///
/// Keycloak already lists a caller's effective (composite-expanded) roles in the token, so
/// for Keycloak tokens use [`RoleHierarchy::flat`] and trust the token: a hierarchy read from
/// a realm export at start-up would keep granting roles an operator has since removed in
/// Keycloak. Build one from pairs or from a realm export for issuers that do not expand
/// composites. Keycloak's default role (`default-roles-<realm>`) never implies anything when
/// read from a realm export.
#[derive(Clone, Default)]
pub struct RoleHierarchy {
    /// role → every role it implies (transitively), excluding itself.
    implies: HashMap<Role, Box<[Role]>>,
    /// role → every role that implies it (transitively), excluding itself.
    implied_by: HashMap<Role, Box<[Role]>>,
}

impl RoleHierarchy {
    /// The name prefix of Keycloak's default realm role (`default-roles-<realm>`), whose
    /// composites [`RoleHierarchy::from_keycloak_realm`] never follows.
    pub const DEFAULT_ROLES_PREFIX: &'static str = "default-roles-";

    /// A hierarchy in which no role implies another.
    pub fn flat() -> Self {
        Self::default()
    }

    /// Builds from `(role, implied)` pairs: `(admin, sandbox:manage)` means holding `admin`
    /// grants `sandbox:manage`.
    ///
    /// # Errors
    /// [`HierarchyError::Cycle`] naming the roles of the first cycle found.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (Role, Role)>,
    ) -> Result<Self, HierarchyError> {
        let mut edges: HashMap<Role, BTreeSet<Role>> = HashMap::new();
        for (role, implied) in pairs {
            edges.entry(role).or_default().insert(implied);
        }
        Self::from_edges(&edges)
    }

    /// Builds from a Keycloak realm export (the JSON of `deploy/keycloak/`), following the
    /// `composites` of realm roles and of client roles — except those of the default role
    /// (a realm role whose name starts with [`DEFAULT_ROLES_PREFIX`](Self::DEFAULT_ROLES_PREFIX)),
    /// which are ignored: every user holds that role, so expanding a copy of its composites
    /// taken at export time would grant those roles to everyone, even after an operator has
    /// removed them from the default role in Keycloak. For Keycloak tokens, which carry their
    /// effective roles already, prefer [`RoleHierarchy::flat`].
    ///
    /// # Errors
    /// [`HierarchyError::InvalidRealmExport`] if `roles` has the wrong shape;
    /// [`HierarchyError::Cycle`] if composites loop.
    pub fn from_keycloak_realm(realm: &Value) -> Result<Self, HierarchyError> {
        let bad = HierarchyError::InvalidRealmExport;
        let mut edges: HashMap<Role, BTreeSet<Role>> = HashMap::new();
        let Some(roles) = realm.get("roles") else {
            return Ok(Self::flat());
        };
        let roles = roles.as_object().ok_or(bad("`roles` is not an object"))?;
        if let Some(realm_roles) = roles.get("realm") {
            let list = realm_roles
                .as_array()
                .ok_or(bad("`roles.realm` is not an array"))?;
            for def in list {
                let name = role_name(def)?;
                if name.starts_with(Self::DEFAULT_ROLES_PREFIX) {
                    continue;
                }
                add_composites(&mut edges, Role::realm(name), def)?;
            }
        }
        if let Some(clients) = roles.get("client") {
            let clients = clients
                .as_object()
                .ok_or(bad("`roles.client` is not an object"))?;
            for (client, list) in clients {
                let list = list
                    .as_array()
                    .ok_or(bad("client role list is not an array"))?;
                for def in list {
                    let name = role_name(def)?;
                    add_composites(&mut edges, Role::client(client.as_str(), name), def)?;
                }
            }
        }
        Self::from_edges(&edges)
    }

    /// Parses a realm export from JSON text; see [`RoleHierarchy::from_keycloak_realm`].
    ///
    /// # Errors
    /// As [`RoleHierarchy::from_keycloak_realm`], and `InvalidRealmExport` for invalid JSON.
    pub fn from_keycloak_realm_json(json: &str) -> Result<Self, HierarchyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|_| HierarchyError::InvalidRealmExport("not valid json"))?;
        Self::from_keycloak_realm(&value)
    }

    fn from_edges(edges: &HashMap<Role, BTreeSet<Role>>) -> Result<Self, HierarchyError> {
        // Depth-first search with colours finds cycles and the closure in one pass.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            InProgress,
            Done,
        }
        fn visit(
            role: &Role,
            edges: &HashMap<Role, BTreeSet<Role>>,
            marks: &mut HashMap<Role, Mark>,
            closure: &mut HashMap<Role, BTreeSet<Role>>,
            stack: &mut Vec<Role>,
        ) -> Result<(), HierarchyError> {
            match marks.get(role) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::InProgress) => {
                    let start = stack.iter().position(|r| r == role).unwrap_or(0);
                    let mut cycle: Vec<Role> = stack.get(start..).unwrap_or_default().to_vec();
                    cycle.push(role.clone());
                    return Err(HierarchyError::Cycle(cycle));
                }
                None => {}
            }
            marks.insert(role.clone(), Mark::InProgress);
            stack.push(role.clone());
            let mut all = BTreeSet::new();
            for next in edges.get(role).into_iter().flatten() {
                visit(next, edges, marks, closure, stack)?;
                all.insert(next.clone());
                if let Some(sub) = closure.get(next) {
                    all.extend(sub.iter().cloned());
                }
            }
            stack.pop();
            marks.insert(role.clone(), Mark::Done);
            closure.insert(role.clone(), all);
            Ok(())
        }

        let mut marks = HashMap::new();
        let mut closure: HashMap<Role, BTreeSet<Role>> = HashMap::new();
        // Visit in a fixed order so the reported cycle does not depend on hash order.
        let roots: BTreeSet<&Role> = edges.keys().collect();
        for role in roots {
            visit(role, edges, &mut marks, &mut closure, &mut Vec::new())?;
        }
        let mut implied_by: HashMap<Role, BTreeSet<Role>> = HashMap::new();
        for (role, implied) in &closure {
            for r in implied {
                implied_by
                    .entry(r.clone())
                    .or_default()
                    .insert(role.clone());
            }
        }
        let freeze = |m: HashMap<Role, BTreeSet<Role>>| {
            m.into_iter()
                .filter(|(_, set)| !set.is_empty())
                .map(|(k, set)| (k, set.into_iter().collect::<Box<[Role]>>()))
                .collect()
        };
        Ok(Self {
            implies: freeze(closure),
            implied_by: freeze(implied_by),
        })
    }

    /// Whether holding `held` grants `required` (a role always grants itself).
    pub fn implies(&self, held: &Role, required: &Role) -> bool {
        held == required
            || self
                .implies
                .get(held)
                .is_some_and(|implied| implied.contains(required))
    }

    /// Whether any role in `held` grants `required`. Allocation-free.
    pub fn grants(&self, held: &RoleSet, required: &Role) -> bool {
        held.contains(required)
            || self
                .implied_by
                .get(required)
                .is_some_and(|granters| granters.iter().any(|g| held.contains(g)))
    }

    /// Every role that `role` implies, transitively, not including itself.
    pub fn implied_roles(&self, role: &Role) -> impl Iterator<Item = &Role> {
        self.implies.get(role).into_iter().flat_map(|r| r.iter())
    }

    /// `held` expanded with every implied role.
    pub fn expand(&self, held: &RoleSet) -> RoleSet {
        held.iter()
            .flat_map(|r| std::iter::once(r).chain(self.implied_roles(r)))
            .cloned()
            .collect()
    }
}

impl fmt::Debug for RoleHierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        let mut keys: Vec<&Role> = self.implies.keys().collect();
        keys.sort();
        for k in keys {
            map.entry(k, &self.implies.get(k));
        }
        map.finish()
    }
}

fn role_name(def: &Value) -> Result<&str, HierarchyError> {
    def.get("name")
        .and_then(Value::as_str)
        .ok_or(HierarchyError::InvalidRealmExport(
            "role without a string `name`",
        ))
}

fn add_composites(
    edges: &mut HashMap<Role, BTreeSet<Role>>,
    role: Role,
    def: &Value,
) -> Result<(), HierarchyError> {
    let bad = HierarchyError::InvalidRealmExport;
    let Some(composites) = def.get("composites") else {
        return Ok(());
    };
    let composites = composites
        .as_object()
        .ok_or(bad("`composites` is not an object"))?;
    let entry = edges.entry(role).or_default();
    if let Some(realm) = composites.get("realm") {
        for name in realm
            .as_array()
            .ok_or(bad("`composites.realm` is not an array"))?
        {
            let name = name
                .as_str()
                .ok_or(bad("composite role name is not a string"))?;
            entry.insert(Role::realm(name));
        }
    }
    if let Some(clients) = composites.get("client") {
        let clients = clients
            .as_object()
            .ok_or(bad("`composites.client` is not an object"))?;
        for (client, names) in clients {
            for name in names
                .as_array()
                .ok_or(bad("composite client roles are not an array"))?
            {
                let name = name
                    .as_str()
                    .ok_or(bad("composite role name is not a string"))?;
                entry.insert(Role::client(client.as_str(), name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> Role {
        Role::realm(name)
    }

    fn agentcube() -> RoleHierarchy {
        RoleHierarchy::from_pairs([
            (r("admin"), r("sandbox:manage")),
            (r("sandbox:manage"), r("sandbox:invoke")),
        ])
        .unwrap()
    }

    #[test]
    fn implication_is_transitive_and_not_reversed() {
        let h = agentcube();
        assert!(h.implies(&r("admin"), &r("sandbox:invoke")));
        assert!(h.implies(&r("admin"), &r("sandbox:manage")));
        assert!(h.implies(&r("sandbox:invoke"), &r("sandbox:invoke")));
        assert!(!h.implies(&r("sandbox:invoke"), &r("sandbox:manage")));
        assert!(!h.implies(&r("sandbox:manage"), &r("admin")));
        let held: RoleSet = [r("admin")].into_iter().collect();
        assert!(h.grants(&held, &r("sandbox:invoke")));
        let held: RoleSet = [r("sandbox:invoke")].into_iter().collect();
        assert!(!h.grants(&held, &r("admin")));
        assert!(!h.grants(&RoleSet::new(), &r("sandbox:invoke")));
    }

    #[test]
    fn a_client_role_named_like_a_realm_role_grants_nothing_of_it() {
        let h = agentcube();
        let held: RoleSet = [Role::client("other-client", "admin")]
            .into_iter()
            .collect();
        assert!(!h.grants(&held, &r("admin")));
        assert!(!h.grants(&held, &r("sandbox:invoke")));
    }

    #[test]
    fn cycles_are_an_error_naming_the_cycle() {
        let err = RoleHierarchy::from_pairs([
            (r("a"), r("b")),
            (r("b"), r("c")),
            (r("c"), r("a")),
            (r("x"), r("a")),
        ])
        .unwrap_err();
        assert_eq!(err.code(), "role_hierarchy_cycle");
        assert_eq!(
            err.to_string(),
            "role hierarchy has a cycle: a -> b -> c -> a"
        );
        let self_loop = RoleHierarchy::from_pairs([(r("a"), r("a"))]).unwrap_err();
        assert_eq!(self_loop, HierarchyError::Cycle(vec![r("a"), r("a")]));
    }

    #[test]
    fn expand_adds_implied_roles() {
        let held: RoleSet = [r("admin")].into_iter().collect();
        let expanded = agentcube().expand(&held);
        assert_eq!(expanded.len(), 3);
        assert!(expanded.contains_realm("sandbox:invoke"));
    }

    #[test]
    fn realm_export_shapes_are_checked() {
        for bad in [
            r#"{"roles": []}"#,
            r#"{"roles": {"realm": {}}}"#,
            r#"{"roles": {"realm": [{"composites": {}}]}}"#,
            r#"{"roles": {"realm": [{"name": "a", "composites": {"realm": "b"}}]}}"#,
            r#"{"roles": {"client": {"c": [{"name": "a", "composites": {"client": {"d": [1]}}}]}}}"#,
            "not json",
        ] {
            let err = RoleHierarchy::from_keycloak_realm_json(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_realm_export", "{bad}");
        }
    }

    #[test]
    fn the_default_role_of_a_realm_export_implies_nothing() {
        let h = RoleHierarchy::from_keycloak_realm_json(
            r#"{"roles": {"realm": [
                {"name": "sandbox:invoke"},
                {"name": "admin", "composite": true, "composites": {"realm": ["sandbox:invoke"]}},
                {"name": "default-roles-agentcube", "composite": true,
                 "composites": {"realm": ["sandbox:invoke", "offline_access"],
                                "client": {"account": ["view-profile"]}}},
                {"name": "ops", "composite": true,
                 "composites": {"realm": ["default-roles-agentcube"]}}
            ]}}"#,
        )
        .unwrap();
        let default = r("default-roles-agentcube");
        assert_eq!(h.implied_roles(&default).count(), 0);
        assert!(!h.implies(&default, &r("sandbox:invoke")));
        assert!(!h.implies(&default, &Role::client("account", "view-profile")));
        let held: RoleSet = [default.clone()].into_iter().collect();
        assert!(!h.grants(&held, &r("sandbox:invoke")));
        assert_eq!(h.expand(&held).len(), 1);
        // A role including the default role gets the role itself, but nothing through it.
        assert!(h.implies(&r("ops"), &default));
        assert!(!h.implies(&r("ops"), &r("sandbox:invoke")));
        // Other composites are still followed.
        assert!(h.implies(&r("admin"), &r("sandbox:invoke")));
        // Explicit pairs are taken as given: the rule is about realm exports.
        let pairs = RoleHierarchy::from_pairs([(default.clone(), r("sandbox:invoke"))]).unwrap();
        assert!(pairs.implies(&default, &r("sandbox:invoke")));
    }

    #[test]
    fn client_role_composites_are_followed() {
        let h = RoleHierarchy::from_keycloak_realm_json(
            r#"{"roles": {
                "realm": [{"name": "ops", "composites": {"client": {"api": ["write"]}}}],
                "client": {"api": [{"name": "write", "composites": {"client": {"api": ["read"]}}}]}
            }}"#,
        )
        .unwrap();
        assert!(h.implies(&r("ops"), &Role::client("api", "read")));
        assert!(!h.implies(&r("ops"), &r("read")));
    }
}
