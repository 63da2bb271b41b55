//! Credential newtypes whose `Debug` and `Display` never show the value.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::ClientError;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::from(value.into()))
            }

            /// The value itself. Do not log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }
    };
}

secret_type!(
    /// An OAuth access token, sent as `Authorization: Bearer …`.
    ///
    /// `Debug` and `Display` print `AccessToken(***)`; read the value with
    /// [`AccessToken::secret`]. Cloning is cheap (shared).
    AccessToken
);

secret_type!(
    /// A client secret (confidential clients). `Debug` and `Display` print `ClientSecret(***)`.
    ClientSecret
);

secret_type!(
    /// An OAuth refresh token. `Debug` and `Display` print `RefreshToken(***)`.
    RefreshToken
);

secret_type!(
    /// An OpenID Connect ID token (a JWT about the user, for the client; not for APIs).
    /// `Debug` and `Display` print `IdToken(***)`.
    IdToken
);

secret_type!(
    /// An authorization code received on the redirect URI. `Debug` and `Display` print
    /// `AuthorizationCode(***)`.
    AuthorizationCode
);

secret_type!(
    /// The device code of a device authorization (RFC 8628); the client keeps it, the user never
    /// sees it. `Debug` and `Display` print `DeviceCode(***)`.
    DeviceCode
);

impl AccessToken {
    /// Checks that the token is non-empty (after trimming surrounding whitespace) and consists of
    /// visible ASCII only, so it can be sent in an HTTP header; returns it trimmed.
    pub(crate) fn checked(value: &str) -> Result<Self, ClientError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ClientError::EmptyToken);
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::InvalidToken);
        }
        Ok(Self::new(value))
    }
}

/// The tokens of a successful token response (code exchange, device grant, refresh).
///
/// `Debug` redacts every token.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub(crate) access_token: AccessToken,
    pub(crate) refresh_token: Option<RefreshToken>,
    pub(crate) id_token: Option<IdToken>,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) refresh_expires_in: Option<Duration>,
    pub(crate) scope: Option<String>,
    pub(crate) received_at: tokio::time::Instant,
}

impl Tokens {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The ID token, if one was issued (scope `openid`).
    pub fn id_token(&self) -> Option<&IdToken> {
        self.id_token.as_ref()
    }

    /// The access token's lifetime as announced (`expires_in`), if the server sent one.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The refresh token's lifetime (Keycloak's `refresh_expires_in`), if the server sent one.
    pub fn refresh_expires_in(&self) -> Option<Duration> {
        self.refresh_expires_in
    }

    /// The granted scope, if the server sent one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// When the request that produced these tokens was sent (the start of their lifetime).
    pub fn received_at(&self) -> tokio::time::Instant {
        self.received_at
    }
}
