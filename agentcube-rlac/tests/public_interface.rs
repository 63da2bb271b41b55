//! The crate through its public API only: the WorkloadManager half and the Router half.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use agentcube_auth_core::{Code, Principal, Rejection, Role, RoleHierarchy, ServiceError};
use agentcube_rlac::{
    AccessPolicy, AccessRequest, Action, AuthMode, CustomReason, Decision, InMemoryOwnerStore,
    OWNER_ANNOTATION, OWNER_HASH_LABEL, OwnerId, OwnerIdError, OwnerIdScheme, OwnerMetadata,
    OwnerMetadataError, OwnerPolicy, OwnerRequired, OwnerStore, Reason, ReservedKey, SessionRecord,
    StoreError,
};
use failing::FailingStore;
use http::StatusCode;

const ISS: &str = "https://kc.example.com/realms/agentcube";

/// What a Router answers for a request on an existing session.
#[derive(Debug, PartialEq)]
enum Answer {
    Proxy(Reason),
    Refuse(StatusCode, &'static str, String),
}

async fn router(
    store: &dyn OwnerStore,
    policy: &dyn AccessPolicy,
    caller: Option<&Principal>,
    session_id: &str,
    action: Action,
) -> Answer {
    let record = match store.get(session_id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Answer::Refuse(
                StatusCode::NOT_FOUND,
                "session_not_found",
                "session not found".to_owned(),
            );
        }
        Err(e) => return refuse(&e),
    };
    let request = AccessRequest::for_record(caller, &record, action);
    let decision = policy.decide(&request);
    agentcube_rlac::audit(&request, &decision);
    match decision.into_result() {
        Ok(reason) => Answer::Proxy(reason),
        Err(denied) => refuse(&denied),
    }
}

/// The answer a test expects.
fn refused(status: u16, code: &'static str, message: &str) -> Answer {
    Answer::Refuse(
        StatusCode::from_u16(status).unwrap(),
        code,
        message.to_owned(),
    )
}

/// Any rlac error through the one error contract.
fn refuse(err: &dyn Rejection) -> Answer {
    Answer::Refuse(
        err.status(),
        err.code().as_str(),
        err.public_message().into_owned(),
    )
}

/// The WorkloadManager's create: owner from the verified identity, metadata, store.
async fn workload_manager_create(
    store: &dyn OwnerStore,
    identity: Option<(&str, &str)>,
    session_id: &str,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), StatusCode> {
    let owner = match identity {
        Some((iss, sub)) => Some(
            OwnerId::from_parts(OwnerIdScheme::SubjectOnly, iss, sub).map_err(|e| e.status())?,
        ),
        None => None,
    };
    let mut record =
        SessionRecord::new(AuthMode::Enabled, owner, session_id).map_err(|e| e.status())?;
    record.kind = "AgentRuntime".into();
    let (mut annotations, mut labels) = (BTreeMap::new(), BTreeMap::new());
    if let Some(meta) = record.owner_metadata() {
        meta.apply_to(&mut annotations, &mut labels);
    }
    store.put(&record).await.map_err(|e| e.status())?;
    Ok((annotations, labels))
}

fn keycloak_hierarchy() -> Arc<RoleHierarchy> {
    let realm = serde_json::json!({
        "roles": {"realm": [
            {"name": "sandbox:invoke"},
            {"name": "sandbox:manage", "composite": true, "composites": {"realm": ["sandbox:invoke"]}},
            {"name": "admin", "composite": true, "composites": {"realm": ["sandbox:manage"]}},
        ]}
    });
    Arc::new(RoleHierarchy::from_keycloak_realm(&realm).unwrap())
}

#[tokio::test]
async fn create_then_use_then_delete() {
    let store: Arc<dyn OwnerStore> = Arc::new(InMemoryOwnerStore::new());
    let policy: Arc<dyn AccessPolicy> = Arc::new(OwnerPolicy::new(keycloak_hierarchy()));
    let alice = Principal::builder(ISS, "alice")
        .roles([Role::realm("sandbox:invoke")])
        .build();
    let bob = Principal::builder(ISS, "bob")
        .roles([Role::realm("sandbox:invoke")])
        .build();
    let admin = Principal::builder(ISS, "ops")
        .roles([Role::realm("admin")])
        .build();
    let foreign_admin = Principal::builder(ISS, "eve")
        .roles([
            Role::realm("sandbox:invoke"),
            Role::client("agentcube-admin", "admin"),
        ])
        .build();

    // Create: allowed for any authenticated caller, refused without one.
    assert_eq!(
        policy.decide(&AccessRequest::create(Some(&alice))).reason(),
        Reason::Authenticated
    );
    assert_eq!(
        policy.decide(&AccessRequest::create(None)).reason(),
        Reason::Unauthenticated
    );

    let (annotations, labels) = workload_manager_create(&*store, Some((ISS, "alice")), "s-1")
        .await
        .unwrap();
    assert_eq!(annotations[OWNER_ANNOTATION], "alice");
    assert_eq!(
        OwnerMetadata::read_maps(&annotations, &labels)
            .unwrap()
            .unwrap(),
        "alice"
    );
    assert_eq!(labels[OWNER_HASH_LABEL].len(), 63);
    // No identity with auth on: 401, and nothing is stored.
    assert_eq!(
        workload_manager_create(&*store, None, "s-2").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert!(store.get("s-2").await.unwrap().is_none());

    let s = &*store;
    let p = &*policy;
    assert_eq!(
        router(s, p, Some(&alice), "s-1", Action::Invoke).await,
        Answer::Proxy(Reason::Owner)
    );
    assert_eq!(
        router(s, p, Some(&bob), "s-1", Action::Invoke).await,
        refused(403, "not_owner", "you do not own this sandbox")
    );
    assert_eq!(
        router(s, p, Some(&foreign_admin), "s-1", Action::Delete).await,
        refused(403, "not_owner", "you do not own this sandbox")
    );
    assert_eq!(
        router(s, p, None, "s-1", Action::Read).await,
        refused(401, "unauthenticated", "authentication required")
    );
    assert_eq!(
        router(s, p, Some(&admin), "s-1", Action::Delete).await,
        Answer::Proxy(Reason::AdminBypass)
    );
    assert_eq!(
        router(s, p, Some(&alice), "nope", Action::Invoke).await,
        refused(404, "session_not_found", "session not found")
    );

    // A session created without an owner (by a deployment that ran without authentication).
    store
        .put(&SessionRecord::unowned_auth_disabled("s-legacy"))
        .await
        .unwrap();
    assert_eq!(
        router(s, p, Some(&alice), "s-legacy", Action::Invoke).await,
        refused(403, "no_owner_record", "sandbox has no owner record")
    );

    // Delete by the owner.
    assert_eq!(
        router(s, p, Some(&alice), "s-1", Action::Delete).await,
        Answer::Proxy(Reason::Owner)
    );
    assert!(store.delete("s-1").await.unwrap());
    assert!(!store.delete("s-1").await.unwrap());
}

#[tokio::test]
async fn a_failing_store_is_never_an_allow() {
    let policy = OwnerPolicy::default();
    let admin = Principal::builder(ISS, "ops")
        .roles([Role::realm("admin")])
        .build();
    for (store, status, code) in [
        (FailingStore::Unavailable, 503, "store_unavailable"),
        (FailingStore::Timeout, 503, "store_timeout"),
        (FailingStore::Malformed, 500, "malformed_record"),
    ] {
        let answer = router(&store, &policy, Some(&admin), "s-1", Action::Invoke).await;
        let Answer::Refuse(got_status, got_code, message) = answer else {
            panic!("{store:?} allowed a request");
        };
        assert_eq!((got_status.as_u16(), got_code), (status, code));
        assert!(message == "session store unavailable" || message == "internal server error");
    }
}

#[tokio::test]
async fn in_memory_store_basics() {
    let store = InMemoryOwnerStore::new();
    assert!(store.is_empty());
    let err = store
        .put(&SessionRecord::unowned_auth_disabled(""))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MalformedRecord { .. }));
    assert_eq!(err.code(), "malformed_record");
    let r = SessionRecord::owned(OwnerId::new("a").unwrap(), "s");
    store.put(&r).await.unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.get("s").await.unwrap(), Some(r.clone()));
    // Replace.
    let r2 = SessionRecord::owned(OwnerId::new("b").unwrap(), "s");
    store.put(&r2).await.unwrap();
    assert_eq!(store.get("s").await.unwrap().unwrap().owner().unwrap(), "b");
    // Through Arc.
    let shared = Arc::new(store);
    assert!(OwnerStore::get(&shared, "s").await.unwrap().is_some());
}

#[tokio::test]
async fn the_in_memory_store_is_bounded_in_count_and_time() {
    use agentcube_auth_core::ManualClock;
    use std::time::Duration;

    let clock = ManualClock::new(1_000);
    let store = InMemoryOwnerStore::new()
        .with_capacity(2)
        .with_ttl(Duration::from_secs(60))
        .with_clock(clock.clone());
    let record = |s: &str| SessionRecord::owned(OwnerId::new("alice").unwrap(), s);
    store.put(&record("a")).await.unwrap();
    store.put(&record("b")).await.unwrap();
    // Full of live sessions: a new one is refused (503), none is forgotten.
    let full = store.put(&record("c")).await.unwrap_err();
    assert_eq!(full.code(), "store_full");
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(store.get("a").await.unwrap().is_some());
    // Rewriting an existing session is not a new record.
    store.put(&record("b")).await.unwrap();

    // A record is forgotten its ttl after it was written; expired ones make room.
    clock.advance(30);
    store.put(&record("b")).await.unwrap(); // b now lives until 1_090
    clock.advance(31); // 1_061: a (until 1_060) has expired
    assert_eq!(store.get("a").await.unwrap(), None);
    assert!(
        !store.delete("a").await.unwrap(),
        "an expired record is not deleted"
    );
    store.put(&record("c")).await.unwrap();
    assert!(store.get("b").await.unwrap().is_some());
    assert!(store.get("c").await.unwrap().is_some());
    assert_eq!(store.len(), 2);
}

#[test]
fn public_types_are_thread_safe_and_decisions_are_copy() {
    fn send_sync<T: Send + Sync>() {}
    fn copy<T: Copy>() {}
    send_sync::<OwnerId>();
    send_sync::<SessionRecord>();
    send_sync::<OwnerPolicy>();
    send_sync::<InMemoryOwnerStore>();
    send_sync::<StoreError>();
    copy::<Decision>();
    copy::<Reason>();
    copy::<Action>();
}

/// A store that always fails, as a deployment's own backend might.
/// A rejection and the `(status, code, public message)` it must answer with.
type Case = (Box<dyn Rejection>, (u16, &'static str, &'static str));

/// `(status, code, public message, challenge)` of any rejection.
fn contract(err: &dyn Rejection) -> (u16, &'static str, String, Option<String>) {
    (
        err.status().as_u16(),
        err.code().as_str(),
        err.public_message().into_owned(),
        err.challenge().map(|c| c.into_owned()),
    )
}

#[test]
fn every_error_that_can_reach_a_client_is_a_rejection_with_its_exact_code() {
    let denied = |reason: Reason| Decision::new(reason).into_result().unwrap_err();
    let cases: Vec<Case> = vec![
        (
            Box::new(denied(Reason::NotOwner)),
            (403, "not_owner", "you do not own this sandbox"),
        ),
        (
            Box::new(denied(Reason::NoOwnerRecord)),
            (403, "no_owner_record", "sandbox has no owner record"),
        ),
        (
            Box::new(denied(Reason::Unauthenticated)),
            (401, "unauthenticated", "authentication required"),
        ),
        (
            Box::new(denied(
                CustomReason::deny(Code::new("read_only_group"), "your group may only read").into(),
            )),
            (403, "read_only_group", "your group may only read"),
        ),
        (
            Box::new(StoreError::unavailable(std::io::Error::other(
                "10.0.0.7:6379 down",
            ))),
            (503, "store_unavailable", "session store unavailable"),
        ),
        (
            Box::new(StoreError::Timeout(std::time::Duration::from_secs(1))),
            (503, "store_timeout", "session store unavailable"),
        ),
        (
            Box::new(StoreError::malformed("s-1", "expected a string")),
            (500, "malformed_record", "internal server error"),
        ),
        (
            Box::new(StoreError::InvalidConfig("invalid redis url")),
            (500, "invalid_store_config", "internal server error"),
        ),
        (
            Box::new(OwnerRequired),
            (
                401,
                "owner_required",
                "an owner is required: authentication is on and the request carries no verified identity",
            ),
        ),
        (
            Box::new(ReservedKey),
            (500, "reserved_key", "internal server error"),
        ),
        (
            Box::new(OwnerIdError::EmptySubject),
            (401, "empty_subject", "owner id needs a non-empty subject"),
        ),
        (
            Box::new(OwnerIdError::EmptyIssuer),
            (
                401,
                "empty_issuer",
                "issuer-qualified owner id needs a non-empty issuer",
            ),
        ),
        (
            Box::new(OwnerIdError::Empty),
            (500, "empty_owner_id", "internal server error"),
        ),
        (
            Box::new(OwnerMetadataError::HashMismatch),
            (500, "owner_hash_mismatch", "internal server error"),
        ),
        (
            Box::new(OwnerMetadataError::MissingLabel),
            (500, "missing_owner_hash_label", "internal server error"),
        ),
        (
            Box::new(OwnerMetadataError::LabelWithoutAnnotation),
            (
                500,
                "owner_hash_label_without_annotation",
                "internal server error",
            ),
        ),
        (
            Box::new(OwnerMetadataError::InvalidOwner(OwnerIdError::Empty)),
            (500, "invalid_owner_annotation", "internal server error"),
        ),
    ];
    for (err, (status, code, message)) in &cases {
        let got = contract(err.as_ref());
        assert_eq!(got, (*status, *code, (*message).to_owned(), None));
        // The same answer as a value (for an axum handler), and a message without the store's
        // address or the record's details.
        let value: ServiceError = err.to_service_error();
        assert_eq!(contract(&value), got);
        assert!(!got.2.contains("10.0.0.7") && !got.2.contains("s-1"));
    }
    // The inherent `code()` is the contract's code.
    assert_eq!(denied(Reason::NotOwner).code(), "not_owner");
    assert_eq!(
        StoreError::Timeout(std::time::Duration::ZERO).code(),
        "store_timeout"
    );
    assert_eq!(OwnerRequired.code(), "owner_required");
    assert_eq!(ReservedKey.code(), "reserved_key");
    assert_eq!(
        denied(Reason::NotOwner).message(),
        "you do not own this sandbox"
    );
    assert!(StoreError::Timeout(std::time::Duration::ZERO).is_transient());
    assert!(!StoreError::malformed("s", "x").is_transient());
}

mod failing {
    use std::time::Duration;

    use agentcube_rlac::{OwnerStore, SessionRecord, StoreError};

    #[derive(Debug, Clone, Copy)]
    pub(crate) enum FailingStore {
        Unavailable,
        Timeout,
        Malformed,
    }

    impl FailingStore {
        fn error(self, id: &str) -> StoreError {
            match self {
                Self::Unavailable => StoreError::unavailable(std::io::Error::other("down")),
                Self::Timeout => StoreError::Timeout(Duration::from_millis(5)),
                Self::Malformed => StoreError::malformed(id, "not json"),
            }
        }
    }

    // The re-exported macro: implementers need no async-trait dependency of their own.
    #[agentcube_rlac::async_trait]
    impl OwnerStore for FailingStore {
        async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
            Err(self.error(id))
        }

        async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
            Err(self.error(&record.session_id))
        }

        async fn delete(&self, id: &str) -> Result<bool, StoreError> {
            Err(self.error(id))
        }
    }
}
