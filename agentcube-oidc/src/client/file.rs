//! [`FileToken`]: a token kept in a file that another process rotates, such as a Kubernetes
//! projected service-account token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::error::ClientError;
use super::source::TokenSource;
use super::token::AccessToken;

/// The largest token file read (a service-account token is about 1 KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A token read from a file and read again when the file changes: the Kubernetes projected
/// service-account token, which the kubelet rotates.
///
/// The kubelet writes a new token when 80 % of the old one's lifetime has passed (lifetimes are
/// at least 10 minutes), replacing the file atomically. This source keeps the token in memory
/// and, at most once per [`recheck_every`](Self::recheck_every) interval (default
/// [`FileToken::DEFAULT_RECHECK`], 10 s), looks at the file's metadata (modification time,
/// length and, on Unix, inode); when any changed, it reads the file again. So a rotated token
/// is used within the interval, long before the old one expires, and a request costs a stat
/// call at most every interval and a read only after a rotation.
///
/// [`invalidate`](TokenSource::invalidate) (called by
/// [`AuthorizedClient`](super::AuthorizedClient) after a 401) makes the next call read the file
/// whatever its metadata. If a re-read fails while a token is held (the file is being
/// replaced), the held token is kept and the read is tried again at the next check; the first
/// read's failure is an error ([`ClientError::Io`], or [`ClientError::EmptyToken`] for an
/// empty file).
///
/// Time is Tokio's clock, so tests pause it instead of sleeping.
///
/// # The credential of last resort
///
/// A workload in Kubernetes that was given no other credential sends its service-account
/// token: an SDK or CLI picks, in this order, an explicit token, client credentials, a stored
/// login, and only then [`FileToken::kubernetes`] when the file exists.
///
/// ```no_run
/// # fn demo(explicit: Option<String>) -> Result<(), agentcube_oidc::client::ClientError> {
/// use std::sync::Arc;
/// use agentcube_oidc::client::{AuthorizedClient, DynTokenSource, FileToken, StaticToken};
///
/// let source: Arc<dyn DynTokenSource> = match explicit {
///     Some(token) => Arc::new(StaticToken::new(token)?),
///     None => match FileToken::kubernetes() {
///         Some(file) => Arc::new(file),
///         None => return Err(agentcube_oidc::client::ClientError::EmptyToken),
///     },
/// };
/// let client = AuthorizedClient::from_shared(reqwest::Client::new(), source);
/// # let _ = client; Ok(()) }
/// ```
pub struct FileToken {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<AccessToken>,
    stamp: Option<Stamp>,
    checked_at: Option<Instant>,
    /// Read the file at the next call, whatever its metadata.
    forced: bool,
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode,
        }
    }
}

impl fmt::Debug for FileToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FileToken")
            .field("path", &self.path)
            .field("recheck", &self.recheck)
            .field("token", &state.token)
            .finish_non_exhaustive()
    }
}

impl FileToken {
    /// Where Kubernetes mounts a pod's service-account token.
    pub const KUBERNETES_TOKEN_PATH: &'static str =
        "/var/run/secrets/kubernetes.io/serviceaccount/token";

    /// The default interval between two looks at the file: 10 s.
    pub const DEFAULT_RECHECK: Duration = Duration::from_secs(10);

    /// A source for the token in `path`. Nothing is read until the first
    /// [`token`](TokenSource::token) call.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            recheck: Self::DEFAULT_RECHECK,
            state: Mutex::new(State::default()),
        }
    }

    /// The pod's service-account token ([`FileToken::KUBERNETES_TOKEN_PATH`]), if the file
    /// exists.
    pub fn kubernetes() -> Option<Self> {
        let path = Path::new(Self::KUBERNETES_TOKEN_PATH);
        path.is_file().then(|| Self::new(path))
    }

    /// How often the file's metadata is looked at (default [`FileToken::DEFAULT_RECHECK`]);
    /// zero looks on every call.
    #[must_use]
    pub fn recheck_every(mut self, interval: Duration) -> Self {
        self.recheck = interval;
        self
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current token, reading the file when it is due and changed (see the type's docs).
    fn current(&self) -> Result<AccessToken, ClientError> {
        let mut state = self.lock();
        let now = Instant::now();
        let due = state.forced
            || state
                .checked_at
                .is_none_or(|at| now.saturating_duration_since(at) >= self.recheck);
        if let (Some(token), false) = (&state.token, due) {
            return Ok(token.clone());
        }
        state.checked_at = Some(now);
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
        if let (Some(token), Ok(stamp)) = (&state.token, &stamp)
            && !state.forced
            && state.stamp == Some(*stamp)
        {
            return Ok(token.clone());
        }
        match stamp
            .map_err(|e| self.io_error(&e))
            .and_then(|stamp| self.read().map(|token| (token, stamp)))
        {
            Ok((token, stamp)) => {
                if state.token.as_ref().is_some_and(|old| *old != token) {
                    tracing::debug!(path = %self.path.display(), "token file changed, read again");
                }
                state.token = Some(token.clone());
                state.stamp = Some(stamp);
                state.forced = false;
                Ok(token)
            }
            Err(error) => match &state.token {
                Some(token) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        code = %error.code(),
                        %error,
                        "reading the token file failed; the token read before is used"
                    );
                    Ok(token.clone())
                }
                None => Err(error),
            },
        }
    }

    fn read(&self) -> Result<AccessToken, ClientError> {
        use std::io::Read as _;
        let file = std::fs::File::open(&self.path).map_err(|e| self.io_error(&e))?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| self.io_error(&e))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ClientError::Io {
                message: format!("token file {} is too large", self.path.display()),
            });
        }
        AccessToken::checked(&text)
    }

    fn io_error(&self, error: &std::io::Error) -> ClientError {
        ClientError::Io {
            message: format!("reading token file {} failed: {error}", self.path.display()),
        }
    }
}

impl TokenSource for FileToken {
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send {
        std::future::ready(self.current())
    }

    fn invalidate(&self) {
        self.lock().forced = true;
    }

    fn invalidate_token(&self, rejected: &AccessToken) {
        let mut state = self.lock();
        if state.token.as_ref() == Some(rejected) {
            state.forced = true;
        }
    }
}
