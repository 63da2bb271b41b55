//! Roles, namespaced by the client that defines them.
//!
//! Most identity providers have one kind of role: a name (`admin`, `sandbox:invoke`). Keycloak
//! also has client roles, defined by one client. A client role `admin` of some other client is a
//! different role from the plain role `admin`; keeping the client in the type makes confusing the
//! two impossible rather than merely unlikely.

use std::fmt;
use std::sync::Arc;

/// A role: a plain role (a name, such as `admin`), or a role defined by one client.
///
/// Identity providers without client roles (Auth0 namespaced claims, `groups`, `roles`) produce
/// plain roles only: [`Role::new`], or a name converted with `From<&str>`. Keycloak calls plain
/// roles realm roles, hence [`Role::realm`], which is the same constructor.
///
/// With the `serde` feature a role serialises as `{"name": "admin"}`, or
/// `{"client": "api", "name": "write"}` for a client role.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role {
    /// Shared by the roles of one client read from one token.
    client: Option<Arc<str>>,
    name: Box<str>,
}

impl Role {
    /// A plain role, such as `admin` or `sandbox:invoke`: what every identity provider's role
    /// claim holds (Keycloak's realm roles).
    pub fn new(name: impl Into<Box<str>>) -> Self {
        Self {
            client: None,
            name: name.into(),
        }
    }

    /// A Keycloak realm role: the same as [`Role::new`].
    pub fn realm(name: impl Into<Box<str>>) -> Self {
        Self::new(name)
    }

    /// A role defined by one client (Keycloak `resource_access.<client>.roles`).
    ///
    /// The client's name may be shared: a token lists several roles of one client.
    pub fn client(client: impl Into<Arc<str>>, name: impl Into<Box<str>>) -> Self {
        Self {
            client: Some(client.into()),
            name: name.into(),
        }
    }

    /// The role's name (within its client, for a client role).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client that defines the role, or `None` for a plain role.
    pub fn client_id(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// Whether this is a plain (realm) role, not a client role.
    pub fn is_realm(&self) -> bool {
        self.client.is_none()
    }
}

/// A plain role ([`Role::new`]).
impl From<&str> for Role {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

/// A plain role ([`Role::new`]).
impl From<String> for Role {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

/// A plain role ([`Role::new`]).
impl From<Box<str>> for Role {
    fn from(name: Box<str>) -> Self {
        Self::new(name)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Role", 2)?;
        match &self.client {
            Some(client) => out.serialize_field("client", &**client)?,
            None => out.skip_field("client")?,
        }
        out.serialize_field("name", &self.name)?;
        out.end()
    }
}

/// Plain roles print as their name; client roles as `<client>/<name>`.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.client {
            None => f.write_str(&self.name),
            Some(client) => write!(f, "{client}/{}", self.name),
        }
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({self})")
    }
}

/// The roles a principal holds, sorted and without duplicates.
///
/// Membership is a binary search: no hashing and no allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RoleSet {
    /// Sorted, without duplicates. A `Vec` kept as collected: shrinking it to a boxed slice
    /// would cost a reallocation per verified token for a few bytes.
    roles: Vec<Role>,
}

impl RoleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds exactly this role (no hierarchy; see
    /// [`RoleHierarchy::grants`](crate::RoleHierarchy::grants) for that).
    pub fn contains(&self, role: &Role) -> bool {
        self.roles.binary_search(role).is_ok()
    }

    /// Whether the set holds the plain role `name` (no hierarchy). Allocation-free.
    pub fn contains_name(&self, name: &str) -> bool {
        self.roles
            .binary_search_by(|r| (r.client.is_some(), &*r.name).cmp(&(false, name)))
            .is_ok()
    }

    /// Whether the set holds the realm role `name`: the same as [`RoleSet::contains_name`].
    pub fn contains_realm(&self, name: &str) -> bool {
        self.contains_name(name)
    }

    /// The roles, sorted (plain roles first, then client roles by client).
    pub fn iter(&self) -> std::slice::Iter<'_, Role> {
        self.roles.iter()
    }

    /// The plain (realm) roles.
    pub fn realm_roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter().filter(|r| r.is_realm())
    }

    /// The roles defined by `client`.
    pub fn client_roles<'a>(&'a self, client: &'a str) -> impl Iterator<Item = &'a Role> + 'a {
        self.roles
            .iter()
            .filter(move |r| r.client_id() == Some(client))
    }

    /// The number of roles.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        let mut roles: Vec<Role> = iter.into_iter().collect();
        roles.sort_unstable();
        roles.dedup();
        Self { roles }
    }
}

impl<'a> IntoIterator for &'a RoleSet {
    type Item = &'a Role;
    type IntoIter = std::slice::Iter<'a, Role>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.roles.iter())
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.roles.iter().map(|r| r.to_string()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_roles_are_realm_roles_and_names_convert() {
        assert_eq!(Role::new("admin"), Role::realm("admin"));
        assert_eq!(Role::from("admin"), Role::new("admin"));
        assert_eq!(Role::from(String::from("admin")), Role::new("admin"));
        let set: RoleSet = [Role::new("admin")].into_iter().collect();
        assert!(set.contains_name("admin") && set.contains_realm("admin"));
    }

    #[test]
    fn realm_and_client_roles_with_the_same_name_are_different() {
        assert_ne!(Role::realm("admin"), Role::client("other", "admin"));
        let set: RoleSet = [Role::client("other", "admin")].into_iter().collect();
        assert!(!set.contains(&Role::realm("admin")));
        assert!(!set.contains_realm("admin"));
        assert!(set.contains(&Role::client("other", "admin")));
    }

    #[test]
    fn set_is_sorted_deduplicated_and_searchable() {
        let set: RoleSet = [
            Role::client("b", "x"),
            Role::realm("z"),
            Role::realm("a"),
            Role::realm("z"),
            Role::client("a", "x"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 4);
        let shown: Vec<String> = set.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a", "z", "a/x", "b/x"]);
        assert!(set.contains_realm("a") && set.contains_realm("z"));
        assert!(!set.contains_realm("x"));
        assert_eq!(set.client_roles("b").count(), 1);
        assert_eq!(set.realm_roles().count(), 2);
    }
}
