//! `FileToken`: a token file rotated by another process (the kubelet's projected
//! service-account token), on paused Tokio time.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentcube_oidc::client::{AuthorizedClient, ClientError, FileToken, TokenSource};
use wiremock::matchers::bearer_token;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fresh directory for one test (removed when dropped).
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agentcube-file-token-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn token(&self) -> PathBuf {
        self.0.join("token")
    }

    /// Writes `content` the way the kubelet does: a new file, renamed over the old one.
    fn rotate(&self, content: &str) {
        let next = self.0.join("token.next");
        std::fs::write(&next, content).unwrap();
        std::fs::rename(next, self.token()).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn token(source: &FileToken) -> String {
    source.token().await.unwrap().secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_rotated_file_is_read_again_after_the_recheck_interval() {
    let dir = Dir::new("rotate");
    dir.rotate("eyJ.first.sig\n");
    let source = FileToken::new(dir.token());
    assert_eq!(token(&source).await, "eyJ.first.sig", "trimmed");

    dir.rotate("eyJ.second.sig\n");
    // Within the interval the file is not looked at.
    tokio::time::advance(FileToken::DEFAULT_RECHECK - Duration::from_millis(1)).await;
    assert_eq!(token(&source).await, "eyJ.first.sig");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(token(&source).await, "eyJ.second.sig");
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_file_is_not_read_again() {
    let dir = Dir::new("unchanged");
    dir.rotate("eyJ.same.sig");
    let source = FileToken::new(dir.token()).recheck_every(Duration::ZERO);
    assert_eq!(token(&source).await, "eyJ.same.sig");
    // Rewritten in place with the same length and the old modification time (a filesystem
    // with coarse timestamps): the metadata says nothing changed, so nothing is read.
    let modified = std::fs::metadata(dir.token()).unwrap().modified().unwrap();
    std::fs::write(dir.token(), "eyJ.xxxx.sig").unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.token())
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(token(&source).await, "eyJ.same.sig");
    // invalidate() (a 401) reads it whatever the metadata says.
    source.invalidate();
    assert_eq!(token(&source).await, "eyJ.xxxx.sig");
}

#[tokio::test(start_paused = true)]
async fn a_failed_re_read_keeps_the_token_a_first_failure_is_an_error() {
    let dir = Dir::new("errors");
    let source = FileToken::new(dir.token());
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "io_error");
    assert!(err.to_string().contains("token"), "{err}");

    dir.rotate("  \n");
    tokio::time::advance(FileToken::DEFAULT_RECHECK).await;
    assert_eq!(source.token().await.unwrap_err(), ClientError::EmptyToken);

    dir.rotate("eyJ.good.sig");
    tokio::time::advance(FileToken::DEFAULT_RECHECK).await;
    assert_eq!(token(&source).await, "eyJ.good.sig");
    std::fs::remove_file(dir.token()).unwrap();
    tokio::time::advance(FileToken::DEFAULT_RECHECK).await;
    assert_eq!(
        token(&source).await,
        "eyJ.good.sig",
        "kept while the file is away"
    );
    dir.rotate("eyJ.back.sig");
    tokio::time::advance(FileToken::DEFAULT_RECHECK).await;
    assert_eq!(token(&source).await, "eyJ.back.sig");
    assert!(!format!("{source:?}").contains("eyJ.back.sig"));
}

#[tokio::test]
async fn after_a_401_the_authorized_client_sends_the_rotated_token() {
    let dir = Dir::new("retry");
    dir.rotate("eyJ.old.sig");
    let server = MockServer::start().await;
    Mock::given(bearer_token("eyJ.new.sig"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    // A long interval: only the 401 makes the source look at the file again.
    let client =
        AuthorizedClient::new(FileToken::new(dir.token()).recheck_every(Duration::from_secs(3600)));
    let url = format!("{}/api", server.uri());
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 401);
    dir.rotate("eyJ.new.sig");
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 200);
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    // First call: old, 401, re-read finds the same token, no retry. Second: old, 401, re-read
    // finds the rotated token, one retry with it.
    assert_eq!(
        sent,
        [
            "Bearer eyJ.old.sig",
            "Bearer eyJ.old.sig",
            "Bearer eyJ.new.sig"
        ]
    );
}

#[test]
fn the_kubernetes_path_is_the_service_account_mount() {
    assert_eq!(
        FileToken::KUBERNETES_TOKEN_PATH,
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    // Outside a pod the file does not exist, so there is no such source.
    if !std::path::Path::new(FileToken::KUBERNETES_TOKEN_PATH).exists() {
        assert!(FileToken::kubernetes().is_none());
    }
}
