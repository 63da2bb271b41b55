//! The Router's identity key (load, generate, persist) and the other services' view of its
//! public keys (a remote JWKS or a PEM file).

use std::io;
use std::path::Path;
use std::sync::Arc;

use agentcube_auth_core::jose::{Algorithm, EitherKeySource};
use agentcube_identity::{KeyError, KeyRing, SigningKey};
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
    /// The JWKS URL is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Neither or both of `--router-jwks-url` and `--router-public-key` were given.
    #[error("give exactly one of --router-jwks-url and --router-public-key")]
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
}

/// Loads the Router's identity key ring from `path` (PEM: PKCS#8, PKCS#1, SEC1), or generates
/// an Ed25519 key and writes it there (mode 0600, with `<path>.pub`, an SPKI `PUBLIC KEY` PEM,
/// for `--router-public-key`) when the file does not exist, or generates an ephemeral key when
/// there is no path.
///
/// # Errors
/// Unreadable or invalid key files, or a failure to write a generated key.
pub fn load_or_generate_identity_key(
    path: Option<&Path>,
) -> Result<(KeyRing, IdentityKeyOrigin), KeysError> {
    let Some(path) = path else {
        return Ok((KeyRing::generate()?, IdentityKeyOrigin::Ephemeral));
    };
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
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
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

/// The Router's public keys as the workload manager and the sandbox see them: its JWKS
/// (`/.well-known/agentcube/jwks.json`), fetched and refreshed like an IdP's so a key rotation on
/// the Router is picked up without a restart; or a fixed public key (a `public.pem` file).
pub type RouterKeys = EitherKeySource<RemoteKeySet, Arc<KeyRing>>;

/// From the flags: exactly one of a JWKS URL and a PEM (a file path, or the PEM itself).
/// A remote key set starts its background refresh (call inside a Tokio runtime).
///
/// # Errors
/// [`KeysError`].
pub fn router_keys_from_flags(
    jwks_url: Option<&str>,
    public_key: Option<&str>,
    config: KeyStoreConfig,
) -> Result<RouterKeys, KeysError> {
    match (jwks_url, public_key) {
        (Some(url), None) => {
            let remote = RemoteKeySet::from_jwks_url(url, config)?;
            remote.spawn_background_refresh();
            Ok(EitherKeySource::Left(remote))
        }
        (None, Some(pem_or_path)) => {
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
    Ok(EitherKeySource::Left(RemoteKeySet::from_jwks_url(
        jwks_url,
        KeyStoreConfig::default(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
