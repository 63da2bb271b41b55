//! The access policy, exhaustively: principal × record × action, with the exact reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use agentcube_auth_core::{Code, Principal, Rejection, Role, RoleHierarchy};
use agentcube_rlac::{
    AccessPolicy, AccessPolicyExt, AccessRequest, Action, AuthMode, CustomReason, Decision, Effect,
    OwnerId, OwnerIdScheme, OwnerPolicy, Reason, SessionRecord, policy_fn,
};
use http::StatusCode;

const ISS: &str = "https://kc.example.com/realms/agentcube";

fn hierarchy() -> Arc<RoleHierarchy> {
    // admin ⇒ sandbox:manage ⇒ sandbox:invoke, and a role above admin.
    Arc::new(
        RoleHierarchy::from_pairs([
            (Role::realm("admin"), Role::realm("sandbox:manage")),
            (Role::realm("sandbox:manage"), Role::realm("sandbox:invoke")),
            (Role::realm("realm-superuser"), Role::realm("admin")),
        ])
        .unwrap(),
    )
}

fn policy() -> OwnerPolicy {
    OwnerPolicy::new(hierarchy())
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    OtherUser,
    /// Holds only the realm role `admin`.
    Admin,
    /// Holds only a role that implies `admin` through the hierarchy.
    SuperUser,
    /// Holds `admin` only as a client role of another Keycloak client.
    OtherClientAdmin,
    /// The owner's username and email, but another subject.
    OwnerLookalike,
    /// Owner and admin at once.
    OwnerAndAdmin,
    Nobody,
}

const ALL_WHO: [Who; 8] = [
    Who::Owner,
    Who::OtherUser,
    Who::Admin,
    Who::SuperUser,
    Who::OtherClientAdmin,
    Who::OwnerLookalike,
    Who::OwnerAndAdmin,
    Who::Nobody,
];

fn principal(who: Who) -> Option<Principal> {
    let invoke = Role::realm("sandbox:invoke");
    Some(match who {
        Who::Owner => Principal::builder(ISS, "user-1").roles([invoke]).build(),
        Who::OtherUser => Principal::builder(ISS, "user-2").roles([invoke]).build(),
        Who::Admin => Principal::builder(ISS, "admin-1")
            .roles([Role::realm("admin")])
            .build(),
        Who::SuperUser => Principal::builder(ISS, "root-1")
            .roles([Role::realm("realm-superuser")])
            .build(),
        Who::OtherClientAdmin => Principal::builder(ISS, "user-3")
            .roles([invoke, Role::client("other-app", "admin")])
            .build(),
        Who::OwnerLookalike => Principal::builder(ISS, "user-9")
            .username("user-1")
            .email("user-1", true)
            .roles([invoke])
            .build(),
        Who::OwnerAndAdmin => Principal::builder(ISS, "user-1")
            .roles([Role::realm("admin")])
            .build(),
        Who::Nobody => return None,
    })
}

#[derive(Clone, Copy, Debug)]
enum Rec {
    OwnedByUser1,
    NoOwner,
}

fn record(rec: Rec) -> SessionRecord {
    match rec {
        Rec::OwnedByUser1 => SessionRecord::owned(OwnerId::new("user-1").unwrap(), "s-1"),
        Rec::NoOwner => SessionRecord::unowned_auth_disabled("s-1"),
    }
}

/// The expected reason code for (who, record) on invoke/read/delete; create is separate.
fn expected(who: Who, rec: Rec) -> &'static str {
    use Rec::*;
    use Who::*;
    match (who, rec) {
        (Nobody, _) => "unauthenticated",
        (Owner | OwnerAndAdmin, OwnedByUser1) => "owner",
        (Admin | SuperUser | OwnerAndAdmin, _) => "admin_bypass",
        (OtherUser | OtherClientAdmin | OwnerLookalike, OwnedByUser1) => "not_owner",
        (Owner | OtherUser | OtherClientAdmin | OwnerLookalike, NoOwner) => "no_owner_record",
    }
}

#[test]
fn full_matrix() {
    let policy = policy();
    let mut checked = 0;
    for who in ALL_WHO {
        let p = principal(who);
        for rec in [Rec::OwnedByUser1, Rec::NoOwner] {
            let r = record(rec);
            for action in Action::ALL {
                let decision = policy.decide(&AccessRequest::for_record(p.as_ref(), &r, action));
                let want = match (action, who) {
                    (Action::Create, Who::Nobody) => "unauthenticated",
                    (Action::Create, _) => "authenticated",
                    _ => expected(who, rec),
                };
                assert_eq!(decision.code(), want, "{who:?} {rec:?} {action:?}");
                let allow = matches!(want, "owner" | "admin_bypass" | "authenticated");
                assert_eq!(decision.is_allowed(), allow, "{who:?} {rec:?} {action:?}");
                // The owner-only constructor gives the same answer as the record.
                let by_owner = policy.decide(&AccessRequest::new(p.as_ref(), r.owner(), action));
                assert_eq!(by_owner, decision);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8 * 2 * 4);
}

#[test]
fn deny_codes_messages_and_statuses_are_exact() {
    let policy = policy();
    let owned = record(Rec::OwnedByUser1);
    let ownerless = record(Rec::NoOwner);
    let bob = principal(Who::OtherUser).unwrap();

    let denied = policy
        .decide(&AccessRequest::for_record(
            Some(&bob),
            &owned,
            Action::Invoke,
        ))
        .into_result()
        .unwrap_err();
    assert_eq!(denied.reason(), Reason::NotOwner);
    assert_eq!(denied.to_string(), "you do not own this sandbox");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    let denied = policy
        .decide(&AccessRequest::for_record(
            Some(&bob),
            &ownerless,
            Action::Delete,
        ))
        .into_result()
        .unwrap_err();
    assert_eq!(denied.reason(), Reason::NoOwnerRecord);
    assert_eq!(denied.to_string(), "sandbox has no owner record");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    let denied = policy
        .decide(&AccessRequest::for_record(None, &owned, Action::Read))
        .into_result()
        .unwrap_err();
    assert_eq!(denied.code(), "unauthenticated");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);

    let allowed = policy.decide(&AccessRequest::for_record(
        principal(Who::Admin).as_ref(),
        &owned,
        Action::Delete,
    ));
    assert_eq!(allowed.into_result(), Ok(Reason::AdminBypass));
    assert_eq!(
        allowed.to_string(),
        "allow (admin_bypass): caller holds the admin role"
    );
}

#[test]
fn reasons_have_fixed_effects_and_distinct_codes() {
    let all = [
        Reason::Owner,
        Reason::AdminBypass,
        Reason::Authenticated,
        Reason::AuthDisabled,
        Reason::Unauthenticated,
        Reason::NoOwnerRecord,
        Reason::NotOwner,
    ];
    let allow = [true, true, true, true, false, false, false];
    for (reason, allow) in all.iter().zip(allow) {
        assert_eq!(reason.effect() == Effect::Allow, allow, "{reason:?}");
        assert_eq!(Decision::new(*reason).is_allowed(), allow);
        assert!(
            reason
                .code()
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
        assert_eq!(reason.message(), reason.message().to_lowercase());
    }
    let mut codes: Vec<_> = all.iter().map(Reason::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
}

#[test]
fn a_client_role_named_admin_never_bypasses_even_with_the_hierarchy() {
    // The hierarchy knows realm admin; the principal holds admin of *our own* router client
    // and of another client: neither is the realm role.
    let p = Principal::builder(ISS, "user-3")
        .roles([
            Role::client("agentcube-router", "admin"),
            Role::client("other-app", "admin"),
        ])
        .build();
    let r = record(Rec::OwnedByUser1);
    let d = policy().decide(&AccessRequest::for_record(Some(&p), &r, Action::Invoke));
    assert_eq!(d.reason(), Reason::NotOwner);
    // A deployment that does want a client role as its admin role can say so.
    let client_admin = policy().with_admin_role(Role::client("agentcube-router", "admin"));
    let d = client_admin.decide(&AccessRequest::for_record(Some(&p), &r, Action::Invoke));
    assert_eq!(d.reason(), Reason::AdminBypass);
}

#[test]
fn admin_role_is_configurable_and_can_be_switched_off() {
    let r = record(Rec::OwnedByUser1);
    let admin = principal(Who::Admin).unwrap();
    let manager = Principal::builder(ISS, "m")
        .roles([Role::realm("sandbox:manage")])
        .build();

    // `sandbox:manage` as the admin role: admin holds it through the hierarchy.
    let p = policy().with_admin_role(Role::realm("sandbox:manage"));
    for who in [&admin, &manager] {
        let d = p.decide(&AccessRequest::for_record(Some(who), &r, Action::Delete));
        assert_eq!(d.reason(), Reason::AdminBypass);
    }
    // The manager does not hold `admin`.
    let d = policy().decide(&AccessRequest::for_record(
        Some(&manager),
        &r,
        Action::Delete,
    ));
    assert_eq!(d.reason(), Reason::NotOwner);

    let p = policy().without_admin_bypass();
    assert!(p.admin_role().is_none());
    let d = p.decide(&AccessRequest::for_record(Some(&admin), &r, Action::Delete));
    assert_eq!(d.reason(), Reason::NotOwner);
    let ownerless = record(Rec::NoOwner);
    let d = p.decide(&AccessRequest::for_record(
        Some(&admin),
        &ownerless,
        Action::Delete,
    ));
    assert_eq!(d.reason(), Reason::NoOwnerRecord);
}

#[test]
fn default_policy_uses_a_flat_hierarchy_and_realm_admin() {
    let p = OwnerPolicy::default();
    assert_eq!(p.admin_role(), Some(&Role::realm("admin")));
    assert_eq!(p.owner_scheme(), OwnerIdScheme::SubjectOnly);
    assert_eq!(p.auth_mode(), AuthMode::Enabled);
    let r = record(Rec::OwnedByUser1);
    // Without the hierarchy, a role above admin does not bypass.
    let su = principal(Who::SuperUser).unwrap();
    let d = p.decide(&AccessRequest::for_record(Some(&su), &r, Action::Invoke));
    assert_eq!(d.reason(), Reason::NotOwner);
    let admin = principal(Who::Admin).unwrap();
    let d = p.decide(&AccessRequest::for_record(Some(&admin), &r, Action::Invoke));
    assert_eq!(d.reason(), Reason::AdminBypass);
}

#[test]
fn auth_disabled_allows_everything_with_its_own_reason() {
    let p = policy().with_auth_mode(AuthMode::Disabled);
    for who in ALL_WHO {
        for rec in [Rec::OwnedByUser1, Rec::NoOwner] {
            let r = record(rec);
            for action in Action::ALL {
                let pr = principal(who);
                let d = p.decide(&AccessRequest::for_record(pr.as_ref(), &r, action));
                assert_eq!(d.reason(), Reason::AuthDisabled);
                assert!(d.is_allowed());
            }
        }
    }
}

#[test]
fn issuer_qualified_owners_are_per_issuer() {
    let a = "https://a.example.com/realms/x";
    let b = "https://b.example.com/realms/x";
    let owner = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, a, "user-1").unwrap();
    let r = SessionRecord::owned(owner, "s-1");
    let same_iss = Principal::builder(a, "user-1").build();
    let other_iss = Principal::builder(b, "user-1").build();
    let p = policy().with_owner_scheme(OwnerIdScheme::IssuerQualified);

    let d = p.decide(&AccessRequest::for_record(
        Some(&same_iss),
        &r,
        Action::Invoke,
    ));
    assert_eq!(d.reason(), Reason::Owner);
    let d = p.decide(&AccessRequest::for_record(
        Some(&other_iss),
        &r,
        Action::Invoke,
    ));
    assert_eq!(d.reason(), Reason::NotOwner);

    // Under SubjectOnly the same two would be one owner — the reason to qualify.
    let raw = SessionRecord::owned(OwnerId::new("user-1").unwrap(), "s-2");
    let d = policy().decide(&AccessRequest::for_record(
        Some(&other_iss),
        &raw,
        Action::Invoke,
    ));
    assert_eq!(d.reason(), Reason::Owner);
}

#[test]
fn policies_compose_without_forking() {
    const SHARED: CustomReason = CustomReason::allow(
        Code::new("shared_with_group"),
        "session is shared with your group",
    );
    const NOT_SHARED: CustomReason =
        CustomReason::deny(Code::new("not_shared"), "session is not shared with you");
    const READ_ONLY: CustomReason =
        CustomReason::deny(Code::new("read_only_group"), "your group may only read");

    let shared = policy_fn(|req: &AccessRequest<'_>| {
        let group = req
            .record
            .and_then(|r| r.extra().get("sharedWithGroup"))
            .and_then(|g| g.as_str());
        let ok = req
            .principal
            .zip(group)
            .is_some_and(|(p, g)| p.roles().contains(&Role::realm(g)));
        Decision::new(if ok { SHARED.into() } else { NOT_SHARED.into() })
    });
    let read_only = policy_fn(|req: &AccessRequest<'_>| {
        let ro = req
            .principal
            .is_some_and(|p| p.roles().contains_realm("read-only"));
        if ro && req.action != Action::Read {
            Decision::new(READ_ONLY.into())
        } else {
            Decision::new(Reason::Authenticated)
        }
    });
    let policy = policy().or(shared).and(read_only);

    let mut r = SessionRecord::owned(OwnerId::new("user-1").unwrap(), "s-1");
    r.insert_extra("sharedWithGroup", "team-a".into()).unwrap();
    let teammate = Principal::builder(ISS, "user-2")
        .roles([Role::realm("team-a")])
        .build();
    let stranger = principal(Who::OtherUser).unwrap();
    let ro_owner = Principal::builder(ISS, "user-1")
        .roles([Role::realm("read-only")])
        .build();

    let d = policy.decide(&AccessRequest::for_record(
        Some(&teammate),
        &r,
        Action::Invoke,
    ));
    assert_eq!(d.code(), "shared_with_group");
    assert!(d.is_allowed());
    let d = policy.decide(&AccessRequest::for_record(
        Some(&stranger),
        &r,
        Action::Invoke,
    ));
    assert_eq!(d.reason(), Reason::NotOwner, "the first denial stands");
    let d = policy.decide(&AccessRequest::for_record(
        Some(&ro_owner),
        &r,
        Action::Read,
    ));
    assert_eq!(d.reason(), Reason::Owner);
    let d = policy.decide(&AccessRequest::for_record(
        Some(&ro_owner),
        &r,
        Action::Delete,
    ));
    assert_eq!(d.code(), "read_only_group");
    assert_eq!(d.into_result().unwrap_err().status(), StatusCode::FORBIDDEN);
    // Composition cannot turn "nobody" into an allow unless a rule says so.
    let d = policy.decide(&AccessRequest::for_record(None, &r, Action::Invoke));
    assert_eq!(d.reason(), Reason::Unauthenticated);

    // Policies behind Arc / Box / & are policies.
    let boxed: Box<dyn AccessPolicy> = Box::new(policy);
    let arced: Arc<dyn AccessPolicy> = Arc::from(boxed);
    let by_ref = &arced;
    let d = by_ref.decide(&AccessRequest::for_record(
        Some(&teammate),
        &r,
        Action::Read,
    ));
    assert_eq!(d.code(), "shared_with_group");
}

#[test]
fn create_ignores_any_owner() {
    let p = policy();
    let bob = principal(Who::OtherUser).unwrap();
    let owner = OwnerId::new("user-1").unwrap();
    let d = p.decide(&AccessRequest::new(
        Some(&bob),
        Some(&owner),
        Action::Create,
    ));
    assert_eq!(d.reason(), Reason::Authenticated);
    let d = p.decide(&AccessRequest::create(Some(&bob)).with_session_id("s-9"));
    assert_eq!(d.reason(), Reason::Authenticated);
    let d = p.decide(&AccessRequest::create(None));
    assert_eq!(d.reason(), Reason::Unauthenticated);
}
