//! The Router's identity key (load, generate, persist; a key directory reloaded for rotation)
//! and the other services' view of its public keys (the JWKS of one or more Router replicas,
//! or a PEM file).
//!
//! # The identity key directory
//!
//! `--identity-key DIR` names a directory (typically a Kubernetes Secret mounted as a volume,
//! shared by every Router replica) holding:
//!
//! | file | required | role |
//! |---|---|---|
//! | [`CURRENT_KEY_FILE`] (`current.pem`) | yes | the private key that signs, and is published |
//! | [`NEXT_KEY_FILE`] (`next.pem`) | no | published, not signing: the key that will sign after the swap |
//! | [`PREVIOUS_KEY_FILE`] (`previous.pem`) | no | published, not signing: the key that signed before the swap |
//!
//! `next.pem` and `previous.pem` may hold a private key or only its public key (`PUBLIC KEY`
//! PEM). Every replica publishes all keys present but signs only with `current.pem`, so a key
//! is published by every replica before any replica signs with it, and stays published after
//! they stop, whatever order the replicas reload in. Other files are ignored.
//!
//! The directory is read again every few seconds ([`spawn_identity_key_reload`]) and on
//! `SIGHUP`. A read that fails (a file missing or half-written, a key that does not parse)
//! changes nothing: the Router keeps its keys, logs why, and tries again at the next poll. The
//! files are read through the directory's `..data` link when there is one (the layout the
//! kubelet writes a Secret volume in, swapping that link to update every file at once), and
//! read twice, so a read never mixes two versions of the Secret.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, EitherKeySource, Jwk, KeySourceUnion};
use agentcube_identity::{KeyChange, KeyError, KeyRing, SigningKey};
use agentcube_oidc::{ConfigError, KeyStoreConfig, RemoteKeySet};

/// Errors while loading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A key could not be parsed or generated.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// A key file does not hold a usable key.
    #[error("{path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it (never key material).
        #[source]
        source: KeyError,
    },
    /// The identity key directory has no `current.pem`.
    #[error("{0}: no current.pem (the signing key) in the identity key directory")]
    NoCurrentKey(String),
    /// The JWKS URL is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Neither or both of `--router-jwks-url` and `--router-public-key` were given.
    #[error("give --router-jwks-url (one or more) or --router-public-key, not both")]
    NoSource,
}

/// Where the Router's identity key comes from (its `--identity-key` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKeyOrigin {
    /// Read from an existing PEM file.
    Loaded,
    /// Generated and written to the given path (and its public key next to it).
    Generated,
    /// Generated in memory only: every restart gets a new key, and services holding the old
    /// public key reject the Router's tokens until they refetch its JWKS.
    Ephemeral,
    /// Read from an identity key directory (`current.pem`, `next.pem`, `previous.pem`; see the
    /// module docs), to be reloaded with [`spawn_identity_key_reload`].
    Directory,
}

/// Loads the Router's identity key ring from `path`: a directory is an identity key directory
/// (see the module docs); a file is a PEM private key (PKCS#8, PKCS#1, SEC1), read once; a
/// file that does not exist gets a generated Ed25519 key written to it (mode 0600, with
/// `<path>.pub`, an SPKI `PUBLIC KEY` PEM, for `--router-public-key`). Without a path the key
/// is generated and kept in memory only.
///
/// # Errors
/// Unreadable or invalid key files, or a failure to write a generated key.
pub fn load_or_generate_identity_key(
    path: Option<&Path>,
) -> Result<(KeyRing, IdentityKeyOrigin), KeysError> {
    let Some(path) = path else {
        return Ok((KeyRing::generate()?, IdentityKeyOrigin::Ephemeral));
    };
    if path.is_dir() {
        let keys = IdentityKeyDir::new(path).read()?;
        let ring = KeyRing::empty();
        ring.replace(keys.current, keys.published)?;
        return Ok((ring, IdentityKeyOrigin::Directory));
    }
    let io_err = |source| KeysError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok((KeyRing::from_private_pem(&pem)?, IdentityKeyOrigin::Loaded)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = SigningKey::generate(Algorithm::EdDSA)?;
            let private = key.to_pkcs8_pem()?;
            write_private(path, private.expose_secret()).map_err(io_err)?;
            let public_path = public_key_path(path);
            std::fs::write(&public_path, key.to_public_pem()?).map_err(|source| KeysError::Io {
                path: public_path.display().to_string(),
                source,
            })?;
            Ok((KeyRing::new(key), IdentityKeyOrigin::Generated))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Where a generated identity key's public half is written: `<path>.pub`.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

fn write_private(path: &Path, pem: &str) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()
}

/// The Router's public keys as the workload manager and the sandbox see them: the union of the
/// JWKS (`/.well-known/agentcube/jwks.json`) of one or more Router replicas, each fetched and
/// refreshed like an IdP's so a key rotation on the Router is picked up without a restart (a
/// token's key is found if any replica publishes it; ready when one replica's keys are loaded);
/// or a fixed public key (a `public.pem` file).
pub type RouterKeys = EitherKeySource<KeySourceUnion<RemoteKeySet>, Arc<KeyRing>>;

/// From the flags: one or more JWKS URLs (blank ones are ignored), or a PEM (a file path, or
/// the PEM itself), not both. Each remote key set starts its background refresh (call inside a
/// Tokio runtime).
///
/// # Errors
/// [`KeysError`].
pub fn router_keys_from_flags<S: AsRef<str>>(
    jwks_urls: &[S],
    public_key: Option<&str>,
    config: &KeyStoreConfig,
) -> Result<RouterKeys, KeysError> {
    let urls: Vec<&str> = jwks_urls
        .iter()
        .map(|u| u.as_ref().trim())
        .filter(|u| !u.is_empty())
        .collect();
    match (urls.is_empty(), public_key) {
        (false, None) => {
            let remotes = urls
                .into_iter()
                .map(|url| RemoteKeySet::from_jwks_url(url, config.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            for remote in &remotes {
                remote.spawn_background_refresh();
            }
            Ok(EitherKeySource::Left(KeySourceUnion::new(remotes)))
        }
        (true, Some(pem_or_path)) => {
            let pem = if pem_or_path.trim_start().starts_with("-----BEGIN") {
                pem_or_path.to_owned()
            } else {
                std::fs::read_to_string(pem_or_path).map_err(|source| KeysError::Io {
                    path: pem_or_path.to_owned(),
                    source,
                })?
            };
            Ok(EitherKeySource::Right(Arc::new(KeyRing::from_public_pem(
                &pem,
            )?)))
        }
        _ => Err(KeysError::NoSource),
    }
}

/// The Router's JWKS at `jwks_url` (no background task; the first verification fetches).
///
/// # Errors
/// An invalid URL.
pub fn remote_router_keys(jwks_url: &str) -> Result<RouterKeys, KeysError> {
    Ok(EitherKeySource::Left(KeySourceUnion::new([
        RemoteKeySet::from_jwks_url(jwks_url, KeyStoreConfig::default())?,
    ])))
}

/// The signing key's file in an identity key directory.
pub const CURRENT_KEY_FILE: &str = "current.pem";

/// The next key's file in an identity key directory: published, not signing.
pub const NEXT_KEY_FILE: &str = "next.pem";

/// The previous key's file in an identity key directory: published, not signing.
pub const PREVIOUS_KEY_FILE: &str = "previous.pem";

/// How often the Router reads its identity key directory again by default: 5 s
/// (`--identity-key-reload-secs`).
pub const DEFAULT_IDENTITY_KEY_RELOAD: Duration = Duration::from_secs(5);

/// The kubelet's link to the current version of a Secret (or ConfigMap) volume.
const KUBELET_DATA_LINK: &str = "..data";

/// What an identity key directory holds, parsed.
pub struct IdentityKeys {
    /// `current.pem`: signs.
    pub current: SigningKey,
    /// The public keys of `next.pem` and `previous.pem`, those present, in that order.
    pub published: Vec<Jwk>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKeys")
            .field("current", &self.current.kid())
            .field(
                "published",
                &self
                    .published
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// An identity key directory (see the module docs), read on demand.
#[derive(Debug)]
pub struct IdentityKeyDir {
    dir: PathBuf,
    /// The contents last applied to a ring, or last found unusable (so each bad version is
    /// logged once).
    seen: Option<[u8; 32]>,
}

impl IdentityKeyDir {
    /// The directory at `dir` (nothing is read yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            seen: None,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads and parses the keys: the files are read twice, through the kubelet's `..data`
    /// link when present, until two reads agree (at most a few attempts).
    ///
    /// # Errors
    /// An unreadable directory or file, no `current.pem`, a key that does not parse, or files
    /// that kept changing while they were read.
    pub fn read(&self) -> Result<IdentityKeys, KeysError> {
        let mut last = self.read_files()?;
        for _ in 0..4 {
            let again = self.read_files()?;
            if again.fingerprint == last.fingerprint {
                return parse_identity_keys(&again);
            }
            last = again;
        }
        Err(KeysError::Io {
            path: self.dir.display().to_string(),
            source: io::Error::other("the key files kept changing while being read"),
        })
    }

    /// Reads the directory and applies it to `ring` ([`KeyRing::replace`]) if its contents
    /// changed since the last call: `Ok(None)` when they did not.
    ///
    /// # Errors
    /// As [`read`](Self::read); the ring is then unchanged. The same unusable contents are
    /// reported once, then `Ok(None)` until they change.
    pub fn reload(&mut self, ring: &KeyRing) -> Result<Option<KeyChange>, KeysError> {
        let files = self.read_files()?;
        if self.seen == Some(files.fingerprint) {
            return Ok(None);
        }
        let keys = match self.read() {
            Ok(keys) => keys,
            Err(e) => {
                self.seen = Some(files.fingerprint);
                return Err(e);
            }
        };
        let change = ring.replace(keys.current, keys.published);
        self.seen = Some(keys.fingerprint);
        Ok(Some(change?))
    }

    /// Where the files are: `<dir>/..data` resolved when it exists (an immutable, timestamped
    /// directory the kubelet swaps in), else `<dir>`.
    fn files_dir(&self) -> PathBuf {
        let link = self.dir.join(KUBELET_DATA_LINK);
        match std::fs::canonicalize(&link) {
            Ok(target) if target.is_dir() => target,
            _ => self.dir.clone(),
        }
    }

    fn read_files(&self) -> Result<KeyFiles, KeysError> {
        let base = self.files_dir();
        let read = |name: &str| -> Result<Option<(PathBuf, String)>, KeysError> {
            // Reported under the configured directory, not the kubelet's versioned one.
            let shown = self.dir.join(name);
            match std::fs::read_to_string(base.join(name)) {
                Ok(text) => Ok(Some((shown, text))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(KeysError::Io {
                    path: shown.display().to_string(),
                    source,
                }),
            }
        };
        let current = read(CURRENT_KEY_FILE)?;
        let next = read(NEXT_KEY_FILE)?;
        let previous = read(PREVIOUS_KEY_FILE)?;
        let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for file in [&current, &next, &previous] {
            match file {
                Some((_, text)) => {
                    hasher.update(&u64::try_from(text.len()).unwrap_or(u64::MAX).to_be_bytes());
                    hasher.update(text.as_bytes());
                }
                None => hasher.update(&u64::MAX.to_be_bytes()),
            }
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(hasher.finish().as_ref());
        Ok(KeyFiles {
            dir: self.dir.clone(),
            current,
            next,
            previous,
            fingerprint,
        })
    }
}

/// The raw files of one read.
struct KeyFiles {
    dir: PathBuf,
    current: Option<(PathBuf, String)>,
    next: Option<(PathBuf, String)>,
    previous: Option<(PathBuf, String)>,
    fingerprint: [u8; 32],
}

fn parse_identity_keys(files: &KeyFiles) -> Result<IdentityKeys, KeysError> {
    let key_file = |path: &Path, source| KeysError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let Some((path, text)) = &files.current else {
        return Err(KeysError::NoCurrentKey(files.dir.display().to_string()));
    };
    let current = SigningKey::from_pem(text).map_err(|e| key_file(path, e))?;
    let mut published = Vec::new();
    for (path, text) in [&files.next, &files.previous].into_iter().flatten() {
        let jwk = match SigningKey::from_pem(text) {
            Ok(key) => key.public_jwk().clone(),
            Err(KeyError::NotAPrivateKey) => {
                Jwk::from_public_pem(text).map_err(|e| key_file(path, e))?
            }
            Err(e) => return Err(key_file(path, e)),
        };
        published.push(jwk);
    }
    Ok(IdentityKeys {
        current,
        published,
        fingerprint: files.fingerprint,
    })
}

/// Reads `dir` into `ring` every `every` (never if zero) and whenever the process receives
/// `SIGHUP` (on Unix), logging each change (the signing `kid`, the published ones) and each
/// failure (the ring then keeps its keys). Runs until the runtime stops.
///
/// Why both: the kubelet updates a mounted Secret without telling the process, so polling is
/// what makes an operator's `kubectl apply` reach every replica on its own (reading three small
/// files every few seconds costs nothing); `SIGHUP` lets whoever changed the files make a
/// replica reload at once.
pub fn spawn_identity_key_reload(
    ring: Arc<KeyRing>,
    mut dir: IdentityKeyDir,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = Hangup::new();
        let mut tick = (!every.is_zero()).then(|| {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        // The first tick of an interval completes at once: the files were just read.
        if let Some(tick) = &mut tick {
            tick.tick().await;
        }
        loop {
            let why = tokio::select! {
                () = async {
                    match &mut tick {
                        Some(tick) => { tick.tick().await; }
                        None => std::future::pending().await,
                    }
                } => "poll",
                () = hangup.recv() => "SIGHUP",
            };
            reload_once(&ring, &mut dir, why);
        }
    })
}

fn reload_once(ring: &KeyRing, dir: &mut IdentityKeyDir, why: &str) {
    match dir.reload(ring) {
        Ok(Some(change)) if change.changed => {
            tracing::info!(
                dir = %dir.path().display(),
                trigger = why,
                signing = ?ring.active().map(|k| k.kid().to_owned()),
                previous_signing = ?change.previous_active,
                rotated = change.rotated,
                published = ?ring.kids(),
                "identity keys reloaded"
            );
        }
        Ok(_) => {
            tracing::debug!(dir = %dir.path().display(), trigger = why, "identity keys unchanged");
        }
        Err(e) => tracing::warn!(
            dir = %dir.path().display(),
            trigger = why,
            error = %e,
            "identity keys not reloaded; keeping the current keys"
        ),
    }
}

/// `SIGHUP` on Unix; never elsewhere (or if the handler cannot be installed).
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Self {
        #[cfg(unix)]
        {
            let signal = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot handle SIGHUP; reloading identity keys by polling only");
                    None
                }
            };
            Self { signal }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agentcube-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_private(dir: &Path, name: &str) -> String {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        std::fs::write(dir.join(name), key.to_pkcs8_pem().unwrap().expose_secret()).unwrap();
        key.kid().to_owned()
    }

    #[test]
    fn a_key_directory_signs_with_current_and_publishes_next_and_previous() {
        let dir = temp_dir();
        let current = write_private(&dir, CURRENT_KEY_FILE);
        let (ring, origin) = load_or_generate_identity_key(Some(&dir)).unwrap();
        assert_eq!(origin, IdentityKeyOrigin::Directory);
        assert_eq!(ring.kids(), [current.as_str()]);

        let mut watched = IdentityKeyDir::new(&dir);
        // The first reload reads what the ring already has: nothing changes.
        let change = watched.reload(&ring).unwrap().unwrap();
        assert!(!change.changed);
        assert!(
            watched.reload(&ring).unwrap().is_none(),
            "same files: not parsed again"
        );

        // next.pem as a public key only; previous.pem as a private key.
        let next = SigningKey::generate(Algorithm::ES256).unwrap();
        std::fs::write(dir.join(NEXT_KEY_FILE), next.to_public_pem().unwrap()).unwrap();
        let previous = write_private(&dir, PREVIOUS_KEY_FILE);
        let change = watched.reload(&ring).unwrap().unwrap();
        assert!(change.changed && !change.rotated);
        assert_eq!(
            ring.kids(),
            [current.as_str(), next.kid(), previous.as_str()]
        );
        assert_eq!(ring.active().unwrap().kid(), current);

        // A half-written or missing current.pem changes nothing, and is reported once.
        std::fs::write(
            dir.join(CURRENT_KEY_FILE),
            "-----BEGIN PRIVATE KEY-----\nAAAA",
        )
        .unwrap();
        let err = watched.reload(&ring).unwrap_err().to_string();
        assert!(err.contains("current.pem"), "{err}");
        assert!(watched.reload(&ring).unwrap().is_none());
        std::fs::remove_file(dir.join(CURRENT_KEY_FILE)).unwrap();
        assert!(matches!(
            watched.reload(&ring),
            Err(KeysError::NoCurrentKey(_))
        ));
        assert_eq!(ring.active().unwrap().kid(), current);
        assert!(matches!(
            load_or_generate_identity_key(Some(&dir)),
            Err(KeysError::NoCurrentKey(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The kubelet's layout: each file is a link into `..data`, a link to a timestamped
    /// directory that is swapped to update every file at once.
    #[cfg(unix)]
    #[test]
    fn a_kubernetes_secret_volume_is_read_through_its_data_link() {
        use std::os::unix::fs::symlink;
        let dir = temp_dir();
        let v1 = dir.join("..2025_01_01_00_00_00.1");
        std::fs::create_dir(&v1).unwrap();
        let current = write_private(&v1, CURRENT_KEY_FILE);
        symlink("..2025_01_01_00_00_00.1", dir.join("..data")).unwrap();
        symlink("..data/current.pem", dir.join(CURRENT_KEY_FILE)).unwrap();
        symlink("..data/next.pem", dir.join(NEXT_KEY_FILE)).unwrap();
        let (ring, _) = load_or_generate_identity_key(Some(&dir)).unwrap();
        assert_eq!(ring.kids(), [current.as_str()]);

        // A new version of the Secret: next.pem added.
        let v2 = dir.join("..2025_01_01_00_01_00.2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::copy(v1.join(CURRENT_KEY_FILE), v2.join(CURRENT_KEY_FILE)).unwrap();
        let next = write_private(&v2, NEXT_KEY_FILE);
        symlink("..2025_01_01_00_01_00.2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let mut watched = IdentityKeyDir::new(&dir);
        assert!(watched.reload(&ring).unwrap().unwrap().changed);
        assert_eq!(ring.kids(), [current, next]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn several_jwks_urls_make_one_union_and_blank_ones_are_ignored() {
        let urls = ["http://127.0.0.1:1/jwks", " ", "http://127.0.0.1:2/jwks"];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        match router_keys_from_flags(&urls, None, &KeyStoreConfig::default()).unwrap() {
            EitherKeySource::Left(union) => assert_eq!(union.sources().len(), 2),
            EitherKeySource::Right(_) => unreachable!("urls were given"),
        }
        assert!(matches!(
            router_keys_from_flags(&[""], None, &KeyStoreConfig::default()),
            Err(KeysError::NoSource)
        ));
        assert!(matches!(
            router_keys_from_flags(&urls, Some("x"), &KeyStoreConfig::default()),
            Err(KeysError::NoSource)
        ));
    }

    #[test]
    fn a_generated_key_is_written_with_its_public_key_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("agentcube-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("identity.pem");

        let (ring, origin) = load_or_generate_identity_key(Some(&path)).unwrap();
        assert_eq!(origin, IdentityKeyOrigin::Generated);
        let public = std::fs::read_to_string(public_key_path(&path)).unwrap();
        let verify_only = KeyRing::from_public_pem(&public).unwrap();
        assert_eq!(verify_only.kids(), ring.kids());

        let (reloaded, origin) = load_or_generate_identity_key(Some(&path)).unwrap();
        assert_eq!(origin, IdentityKeyOrigin::Loaded);
        assert_eq!(reloaded.kids(), ring.kids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
