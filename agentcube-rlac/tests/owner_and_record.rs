//! Owner ids, owner metadata and the session record's JSON.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};

use agentcube_auth_core::{Principal, Rejection};
use agentcube_rlac::{
    AuthMode, EntryPoint, OWNER_ANNOTATION, OWNER_HASH_LABEL, OwnerHash, OwnerId, OwnerIdError,
    OwnerIdScheme, OwnerMetadata, OwnerMetadataError, OwnerRequired, ReservedKey, SessionRecord,
};
use http::StatusCode;
use serde_json::json;

// Computed independently: `printf 'user-1' | sha256sum`
// c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b
const USER_1_SHA256: &str = "c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b";
// `printf 'https://kc.example.com/realms/agentcube#user-1' | sha256sum`
const QUALIFIED_SHA256: &str = "b256394a1c0cc54137a271bd8a9ce99162088f84170212263a0a36d66e0551f5";

const ISS: &str = "https://kc.example.com/realms/agentcube";

#[test]
fn owner_hash_label_is_the_first_63_hex_chars_of_sha256() {
    let owner = OwnerId::new("user-1").unwrap();
    assert_eq!(owner.hash().as_str(), &USER_1_SHA256[..63]);
    assert_eq!(OwnerHash::LEN, 63);
    let qualified = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, ISS, "user-1").unwrap();
    assert_eq!(
        qualified.as_str(),
        "https://kc.example.com/realms/agentcube#user-1"
    );
    assert_eq!(qualified.hash().to_string(), QUALIFIED_SHA256[..63]);
}

#[test]
fn owner_metadata_is_stamped_under_the_agentcube_keys() {
    assert_eq!(OWNER_ANNOTATION, "agentcube.io/owner");
    assert_eq!(OWNER_HASH_LABEL, "agentcube.io/owner-hash");
    let meta = OwnerMetadata::new(OwnerId::new("user-1").unwrap());
    assert_eq!(meta.annotations(), [("agentcube.io/owner", "user-1")]);
    assert_eq!(
        meta.labels(),
        [("agentcube.io/owner-hash", &USER_1_SHA256[..63])]
    );

    let mut annotations = BTreeMap::from([("other".to_owned(), "kept".to_owned())]);
    let mut labels: HashMap<String, String> = HashMap::new();
    meta.apply_to(&mut annotations, &mut labels);
    assert_eq!(annotations["agentcube.io/owner"], "user-1");
    assert_eq!(annotations["other"], "kept");
    assert_eq!(labels["agentcube.io/owner-hash"], USER_1_SHA256[..63]);

    assert_eq!(
        serde_json::to_value(&meta).unwrap(),
        json!({
            "annotations": {"agentcube.io/owner": "user-1"},
            "labels": {"agentcube.io/owner-hash": &USER_1_SHA256[..63]},
        })
    );
}

#[test]
fn owner_metadata_reads_back_only_when_consistent() {
    let hash = &USER_1_SHA256[..63];
    let owner = OwnerMetadata::read(Some("user-1"), Some(hash)).unwrap();
    assert_eq!(owner.unwrap(), "user-1");
    assert_eq!(OwnerMetadata::read(None, None), Ok(None));
    assert_eq!(
        OwnerMetadata::read(Some("user-2"), Some(hash)),
        Err(OwnerMetadataError::HashMismatch)
    );
    assert_eq!(
        OwnerMetadata::read(Some("user-1"), None),
        Err(OwnerMetadataError::MissingLabel)
    );
    assert_eq!(
        OwnerMetadata::read(None, Some(hash)),
        Err(OwnerMetadataError::LabelWithoutAnnotation)
    );
    assert_eq!(
        OwnerMetadata::read(Some(""), Some(hash)),
        Err(OwnerMetadataError::InvalidOwner(OwnerIdError::Empty))
    );
    // Each rejection has its own code.
    let code = |a, l| OwnerMetadata::read(a, l).unwrap_err().code();
    assert_eq!(code(Some("user-2"), Some(hash)), "owner_hash_mismatch");
    assert_eq!(code(Some("user-1"), None), "missing_owner_hash_label");
    assert_eq!(
        code(None, Some(hash)),
        "owner_hash_label_without_annotation"
    );
    assert_eq!(code(Some(""), Some(hash)), "invalid_owner_annotation");
    let mut annotations = BTreeMap::new();
    let mut labels = BTreeMap::new();
    OwnerMetadata::new(OwnerId::new("user-1").unwrap()).apply_to(&mut annotations, &mut labels);
    assert_eq!(
        OwnerMetadata::read_maps(&annotations, &labels)
            .unwrap()
            .unwrap(),
        "user-1"
    );
}

#[test]
fn owner_id_is_the_subject_never_username_or_email() {
    let p = Principal::builder(ISS, "3f0c-uuid")
        .username("alice")
        .email("alice@example.com", true)
        .build();
    let id = OwnerId::from_principal(&p, OwnerIdScheme::SubjectOnly).unwrap();
    assert_eq!(id.as_str(), "3f0c-uuid");
    assert!(id.matches(&p, OwnerIdScheme::SubjectOnly));
    let by_name = Principal::builder(ISS, "someone-else")
        .username("3f0c-uuid")
        .build();
    assert!(!id.matches(&by_name, OwnerIdScheme::SubjectOnly));
    assert_eq!(
        OwnerIdScheme::IssuerQualified
            .owner_id(&p)
            .unwrap()
            .as_str(),
        format!("{ISS}#3f0c-uuid")
    );
}

#[test]
fn same_subject_from_two_issuers_is_two_owners_when_qualified() {
    let a = Principal::builder("https://a.example.com", "user-1").build();
    let b = Principal::builder("https://b.example.com", "user-1").build();
    let q = OwnerIdScheme::IssuerQualified;
    let id_a = OwnerId::from_principal(&a, q).unwrap();
    let id_b = OwnerId::from_principal(&b, q).unwrap();
    assert_ne!(id_a, id_b);
    assert!(id_a.matches(&a, q) && !id_a.matches(&b, q));
    assert!(id_b.matches(&b, q) && !id_b.matches(&a, q));
    assert_ne!(id_a.hash(), id_b.hash());
    // Single issuer: the raw subject, as existing session records hold it.
    let s = OwnerIdScheme::SubjectOnly;
    assert_eq!(
        OwnerId::from_principal(&a, s).unwrap(),
        OwnerId::from_principal(&b, s).unwrap()
    );
    assert_eq!(OwnerIdScheme::for_issuer_count(1), s);
    assert_eq!(OwnerIdScheme::for_issuer_count(2), q);
}

#[test]
fn empty_subjects_and_owner_ids_are_rejected() {
    let p = Principal::builder(ISS, "").build();
    assert_eq!(
        OwnerId::from_principal(&p, OwnerIdScheme::SubjectOnly),
        Err(OwnerIdError::EmptySubject)
    );
    assert_eq!(OwnerId::new(""), Err(OwnerIdError::Empty));
    let codes = |r: Result<OwnerId, OwnerIdError>| r.unwrap_err().code();
    assert_eq!(
        codes(OwnerId::from_principal(&p, OwnerIdScheme::IssuerQualified)),
        "empty_subject"
    );
    assert_eq!(
        codes(OwnerId::from_parts(
            OwnerIdScheme::IssuerQualified,
            "",
            "user-1"
        )),
        "empty_issuer"
    );
    // Under SubjectOnly the issuer is not part of the id, so an empty one is fine.
    assert!(OwnerId::from_parts(OwnerIdScheme::SubjectOnly, "", "user-1").is_ok());
    assert_eq!(codes(OwnerId::new("")), "empty_owner_id");
    assert!("".parse::<OwnerId>().is_err());
    assert!(serde_json::from_str::<OwnerId>(r#""""#).is_err());
}

fn full_record() -> SessionRecord {
    let mut r = SessionRecord::owned(OwnerId::new("user-1").unwrap(), "s-1");
    r.sandbox_id = "sb-1".into();
    r.sandbox_name = "sandbox-abc".into();
    r.kind = "AgentRuntime".into();
    r.namespace = "default".into();
    r.entry_points.push(EntryPoint {
        path: "/".into(),
        protocol: "HTTP".into(),
        endpoint: "10.0.0.7:8080".into(),
    });
    r
}

#[test]
fn record_json_round_trip_uses_camel_case() {
    let r = full_record();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v,
        json!({
            "sessionId": "s-1",
            "sandboxId": "sb-1",
            "sandboxName": "sandbox-abc",
            "kind": "AgentRuntime",
            "namespace": "default",
            "entryPoints": [{"path": "/", "protocol": "HTTP", "endpoint": "10.0.0.7:8080"}],
            "ownerId": "user-1",
        })
    );
    let back = SessionRecord::from_json(&r.to_json().unwrap()).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.owner().unwrap(), "user-1");
}

#[test]
fn older_owner_id_spelling_and_alternative_field_names_are_read() {
    let go = json!({
        "kind": "CodeInterpreter",
        "sandboxId": "sb-2",
        "sandboxNamespace": "team",
        "name": "ci-xyz",
        "entryPoints": null,
        "sessionId": "s-2",
        "createdAt": "2025-01-01T00:00:00Z",
        "expiresAt": "2025-01-01T01:00:00Z",
        "idleTimeout": "15m0s",
        "status": "running",
        "ownerID": "user-1",
    });
    let r: SessionRecord = serde_json::from_value(go).unwrap();
    assert_eq!(r.owner().unwrap(), "user-1");
    assert_eq!(r.sandbox_name, "ci-xyz");
    assert_eq!(r.namespace, "team");
    assert!(r.entry_points.is_empty());
    assert_eq!(r.extra()["status"], "running");
    // Written back with the current spelling, unknown fields kept.
    let out = serde_json::to_value(&r).unwrap();
    assert_eq!(out["ownerId"], "user-1");
    assert!(out.get("ownerID").is_none());
    assert_eq!(out["createdAt"], "2025-01-01T00:00:00Z");
    assert_eq!(out["idleTimeout"], "15m0s");
}

#[test]
fn absent_null_or_empty_owner_reads_as_no_owner() {
    for v in [
        json!({"sessionId": "s"}),
        json!({"sessionId": "s", "ownerId": null}),
        json!({"sessionId": "s", "ownerId": ""}),
        json!({"sessionId": "s", "ownerID": ""}),
    ] {
        let r: SessionRecord = serde_json::from_value(v.clone()).unwrap();
        assert!(r.owner().is_none(), "{v}");
        assert!(r.owner_metadata().is_none());
        assert!(serde_json::to_value(&r).unwrap().get("ownerId").is_none());
    }
}

#[test]
fn wrong_types_are_errors_not_missing_owners() {
    for bad in [
        r#"{"sessionId": "s", "ownerId": 42}"#,
        r#"{"sessionId": "s", "ownerId": {"sub": "user-1"}}"#,
        r#"{"sessionId": "s", "ownerId": "a", "ownerID": "b"}"#,
        r#"{"sessionId": 7}"#,
        r#"{"entryPoints": "x"}"#,
        r#"["ownerId", "user-1"]"#,
        r#"not json"#,
        r#""#,
    ] {
        assert!(SessionRecord::from_json(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn records_cannot_be_built_ownerless_while_auth_is_on() {
    let owner = OwnerId::new("user-1").unwrap();
    let r = SessionRecord::new(AuthMode::Enabled, Some(owner.clone()), "s").unwrap();
    assert_eq!(r.owner(), Some(&owner));
    let err = SessionRecord::new(AuthMode::Enabled, None, "s").unwrap_err();
    assert_eq!(err, OwnerRequired);
    assert_eq!(err.code(), "owner_required");
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        err.public_message(),
        "an owner is required: authentication is on and the request carries no verified identity"
    );
    let r = SessionRecord::new(AuthMode::Disabled, None, "s").unwrap();
    assert!(r.owner().is_none());
    let r = SessionRecord::new(AuthMode::Disabled, Some(owner), "s").unwrap();
    assert!(r.owner().is_some());
    // The owner cannot be smuggled in (or out) through the extra fields.
    let mut r = SessionRecord::unowned_auth_disabled("s");
    for key in [
        "ownerId",
        "ownerID",
        "sessionId",
        "name",
        "sandboxNamespace",
    ] {
        assert_eq!(
            r.insert_extra(key, json!("user-1")),
            Err(ReservedKey),
            "{key}"
        );
    }
    assert_eq!(r.insert_extra("createdAt", json!("now")), Ok(None));
    assert!(r.owner().is_none());
}

#[test]
fn owner_metadata_from_a_record() {
    let meta = full_record().owner_metadata().unwrap();
    assert_eq!(meta.owner(), &OwnerId::new("user-1").unwrap());
    assert_eq!(meta.hash().as_str(), &USER_1_SHA256[..63]);
}
