//! Keycloak's role claims, read with serde seeds straight from the claims: for a token, from
//! the JSON text of `realm_access` and `resource_access`, with role names borrowed from it until
//! each becomes a [`Role`]. No map is built for them.
//!
//! The rule is lenient on shape and strict on nesting: only the `roles` array nested inside an
//! object is read; a value of another shape reads nothing; elements that are not strings are
//! skipped.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::jose::strict_json::CowStr;
use crate::role::Role;

/// Visitor methods that accept any scalar and read nothing from it (a visitor's default
/// refuses every type it does not implement).
macro_rules! ignore_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }

        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }

        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// Visitor methods that read nothing from a scalar or an array.
macro_rules! ignore_other_shapes {
    ($de:lifetime) => {
        ignore_scalars!();

        fn visit_seq<A: SeqAccess<$de>>(self, seq: A) -> Result<(), A::Error> {
            IgnoredAny.visit_seq(seq).map(drop)
        }
    };
}

/// Reads a `realm_access` or `resource_access.<client>` object: the string elements of its
/// `roles` array become roles (client roles when `client` is set). Nothing is read when the
/// value is not an object or `roles` is not an array; elements that are not strings are
/// skipped. Flat dotted member names are never looked at.
pub(crate) struct AccessRoles<'o, 'c> {
    pub(crate) out: &'o mut Vec<Role>,
    pub(crate) client: Option<&'c str>,
}

impl<'de> DeserializeSeed<'de> for AccessRoles<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AccessRoles<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an access object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(key) = access.next_key::<CowStr<'de>>()? {
            if key.0 == "roles" {
                access.next_value_seed(RoleNames {
                    out: &mut *self.out,
                    client: self.client,
                })?;
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    ignore_other_shapes!('de);
}

/// The string elements of a `roles` array; see [`AccessRoles`].
struct RoleNames<'o, 'c> {
    out: &'o mut Vec<Role>,
    client: Option<&'c str>,
}

impl<'de> DeserializeSeed<'de> for RoleNames<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RoleNames<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of role names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // The client's name, allocated once for all its roles.
        let mut shared: Option<Arc<str>> = None;
        while let Some(name) = seq.next_element::<MaybeStr<'de>>()? {
            if let Some(name) = name.0 {
                self.out.push(match self.client {
                    Some(client) => {
                        Role::client(shared.get_or_insert_with(|| client.into()).clone(), name)
                    }
                    None => Role::realm(name),
                });
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        IgnoredAny.visit_map(map).map(drop)
    }

    ignore_scalars!();
}

/// `resource_access`: each member is one client's [`AccessRoles`].
pub(crate) struct ClientRoles<'o> {
    pub(crate) out: &'o mut Vec<Role>,
}

impl<'de> DeserializeSeed<'de> for ClientRoles<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ClientRoles<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of clients")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(CowStr(client)) = access.next_key::<CowStr<'de>>()? {
            access.next_value_seed(AccessRoles {
                out: &mut *self.out,
                client: Some(&client),
            })?;
        }
        Ok(())
    }

    ignore_other_shapes!('de);
}

/// A string, or `None` for any other JSON value (which is skipped unread).
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| MaybeStr(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map).map(|_| MaybeStr(None))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}
