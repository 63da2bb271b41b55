//! The ownership decision on every proxied request, against the floor of comparing the
//! caller's subject with the stored owner string.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use agentcube_auth_core::{Principal, Role, RoleHierarchy};
use agentcube_rlac::{
    AccessPolicy, AccessRequest, Action, OwnerId, OwnerIdScheme, OwnerPolicy, SessionRecord,
};
use criterion::{Criterion, criterion_group, criterion_main};

const ISSUER: &str = "http://keycloak.agentcube.svc.cluster.local:8080/realms/agentcube";
const SUBJECT: &str = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";

fn bench_ownership(c: &mut Criterion) {
    let hierarchy = Arc::new(
        RoleHierarchy::from_keycloak_realm_json(include_str!(
            "../../deploy/keycloak/agentcube-realm.json"
        ))
        .expect("realm export parses"),
    );
    let owner = Principal::builder(ISSUER, SUBJECT)
        .roles([
            Role::realm("sandbox:invoke"),
            Role::realm("default-roles-agentcube"),
        ])
        .build();
    let admin = Principal::builder(ISSUER, "admin-sub")
        .roles([Role::realm("admin")])
        .build();
    let record = SessionRecord::owned(OwnerId::new(SUBJECT).unwrap(), "session-1");
    let qualified_owner = OwnerId::from_principal(&owner, OwnerIdScheme::IssuerQualified).unwrap();
    let qualified_record = SessionRecord::owned(qualified_owner, "session-2");
    let policy = OwnerPolicy::new(Arc::clone(&hierarchy));
    let qualified_policy =
        OwnerPolicy::new(hierarchy).with_owner_scheme(OwnerIdScheme::IssuerQualified);

    let mut group = c.benchmark_group("ownership");
    group.bench_function("floor_subject_eq", |b| {
        b.iter(|| black_box(&owner).subject() == black_box(SUBJECT));
    });
    group.bench_function("decide_owner", |b| {
        b.iter(|| {
            let request =
                AccessRequest::for_record(Some(black_box(&owner)), &record, Action::Invoke);
            policy.decide(&request).is_allowed()
        });
    });
    group.bench_function("decide_owner_issuer_qualified", |b| {
        b.iter(|| {
            let request = AccessRequest::for_record(
                Some(black_box(&owner)),
                &qualified_record,
                Action::Invoke,
            );
            qualified_policy.decide(&request).is_allowed()
        });
    });
    group.bench_function("decide_admin_bypass", |b| {
        b.iter(|| {
            let request =
                AccessRequest::for_record(Some(black_box(&admin)), &record, Action::Delete);
            policy.decide(&request).is_allowed()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_ownership);
criterion_main!(benches);
