//! Role checks through the hierarchy, against the floor of a direct set lookup.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use agentcube_auth_core::{Principal, Requirement, Role, RoleHierarchy};
use criterion::{Criterion, criterion_group, criterion_main};

fn realm_hierarchy() -> RoleHierarchy {
    let text = include_str!("../../deploy/keycloak/agentcube-realm.json");
    RoleHierarchy::from_keycloak_realm_json(text).expect("realm export parses")
}

fn bench_roles(c: &mut Criterion) {
    let hierarchy = realm_hierarchy();
    let invoke = Requirement::realm_role("sandbox:invoke");
    let required = Role::realm("sandbox:invoke");
    // A typical Keycloak user: four realm roles, three account-client roles.
    let user = Principal::builder("https://idp", "u")
        .roles(
            [
                "sandbox:invoke",
                "default-roles-agentcube",
                "offline_access",
                "uma_authorization",
            ]
            .map(Role::realm)
            .into_iter()
            .chain(
                ["manage-account", "manage-account-links", "view-profile"]
                    .map(|r| Role::client("account", r)),
            ),
        )
        .build();
    // An admin whose token lists only `admin`: the hierarchy must supply invoke.
    let admin = Principal::builder("https://idp", "a")
        .roles([Role::realm("admin")])
        .build();

    let mut group = c.benchmark_group("roles");
    group.bench_function("floor_set_contains", |b| {
        b.iter(|| black_box(&user).roles().contains(black_box(&required)));
    });
    group.bench_function("requirement_direct", |b| {
        b.iter(|| black_box(&invoke).is_satisfied_by(black_box(&user), &hierarchy));
    });
    group.bench_function("requirement_through_hierarchy", |b| {
        b.iter(|| black_box(&invoke).is_satisfied_by(black_box(&admin), &hierarchy));
    });
    group.finish();
}

criterion_group!(benches, bench_roles);
criterion_main!(benches);
