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
    name: Name,
}

impl Role {
    /// A plain role, such as `admin` or `sandbox:invoke`: what every identity provider's role
    /// claim holds (Keycloak's realm roles).
    pub fn new(name: impl AsRef<str>) -> Self {
        Self {
            client: None,
            name: Name::new(name.as_ref()),
        }
    }

    /// A Keycloak realm role: the same as [`Role::new`].
    pub fn realm(name: impl AsRef<str>) -> Self {
        Self::new(name)
    }

    /// A role defined by one client (Keycloak `resource_access.<client>.roles`).
    ///
    /// The client's name may be shared: a token lists several roles of one client.
    pub fn client(client: impl Into<Arc<str>>, name: impl AsRef<str>) -> Self {
        Self {
            client: Some(client.into()),
            name: Name::new(name.as_ref()),
        }
    }

    /// The role's name (within its client, for a client role).
    pub fn name(&self) -> &str {
        self.name.as_str()
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

/// A role's name, held inline when it is short (most are: Keycloak's default roles, and
/// names such as `sandbox:invoke`), so reading a token's roles allocates nothing per role.
///
/// Compared, ordered and hashed as the text it holds, whichever way it holds it.
#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; Name::INLINE] },
    Heap(Box<str>),
}

impl Name {
    /// The longest name held inline: with its length and the variant's tag, a name takes 32
    /// bytes (a role 48), which covers the default role names of a Keycloak realm whose name
    /// is up to 16 characters long.
    const INLINE: usize = 30;

    fn new(name: &str) -> Self {
        let mut bytes = [0; Self::INLINE];
        match (bytes.get_mut(..name.len()), u8::try_from(name.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(name.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(name.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Heap(name) => name.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always text; the fallback is not reachable.
            Self::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Self::Heap(name) => name,
        }
    }
}

// As the bytes of the text, which is how `str` compares and orders: no need to check again
// that an inline name is text.
impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
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
        out.serialize_field("name", self.name())?;
        out.end()
    }
}

/// Plain roles print as their name; client roles as `<client>/<name>`.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.client {
            None => f.write_str(self.name()),
            Some(client) => write!(f, "{client}/{}", self.name()),
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
            .binary_search_by(|r| {
                (r.client.is_some(), r.name.as_bytes()).cmp(&(false, name.as_bytes()))
            })
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
    use proptest::prelude::*;

    #[test]
    fn short_names_are_inline_and_long_ones_on_the_heap() {
        let ascii = |n: usize| "r".repeat(n);
        let accented = |n: usize| format!("{}é", "r".repeat(n - 2));
        for (name, inline) in [
            (String::new(), true),
            (ascii(Name::INLINE), true),
            (ascii(Name::INLINE + 1), false),
            (accented(Name::INLINE), true),
            (accented(Name::INLINE + 1), false),
            ("default-roles-agentcube".to_owned(), true),
        ] {
            let role = Role::new(&name);
            assert_eq!(role.name(), name);
            assert_eq!(matches!(role.name, Name::Inline { .. }), inline, "{name}");
        }
    }

    proptest! {
        /// Names compare, order and hash as their text, inline or not.
        #[test]
        fn names_behave_as_their_text(a in "[a-cé]{0,40}", b in "[a-cé]{0,40}") {
            use std::hash::BuildHasher as _;
            let (ra, rb) = (Role::new(&a), Role::new(&b));
            prop_assert_eq!(ra.name(), a.as_str());
            prop_assert_eq!(ra == rb, a == b);
            prop_assert_eq!(ra.cmp(&rb), a.cmp(&b));
            let hasher = std::hash::RandomState::new();
            prop_assert_eq!(
                hasher.hash_one(&ra.name) == hasher.hash_one(&rb.name),
                a == b,
            );
            let set: RoleSet = [ra].into_iter().collect();
            prop_assert!(set.contains_name(&a));
            prop_assert_eq!(set.contains_name(&b), a == b);
        }
    }

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
