//! The parts every flow shares: client identity, endpoints, transport, and the builder settings.

use std::sync::Arc;

use tokio::time::Instant;
use url::Url;

use super::error::ClientError;
use super::http::{
    ClientAuthMethod, ClientCredentialsAuth, EndpointKind, Endpoints, HttpConfig, RawResponse,
    Transport, parse_tokens, parse_url,
};
use super::token::{ClientSecret, Tokens};

/// A configured OAuth client: who it is, where the server is, how to talk to it.
#[derive(Debug)]
pub(crate) struct OAuthClient {
    pub(crate) auth: ClientCredentialsAuth,
    pub(crate) endpoints: Endpoints,
    pub(crate) transport: Transport,
}

impl OAuthClient {
    pub(crate) async fn endpoint(&self, kind: EndpointKind) -> Result<Url, ClientError> {
        self.endpoints.get(&self.transport, kind).await
    }

    /// POSTs `params` to the endpoint `kind`, authenticating the client; returns the raw answer
    /// and when it was sent.
    pub(crate) async fn post(
        &self,
        kind: EndpointKind,
        params: &[(&str, &str)],
    ) -> Result<(RawResponse, Instant), ClientError> {
        let url = self.endpoint(kind).await?;
        let sent_at = Instant::now();
        let response = self
            .transport
            .post_form(kind.label(), &url, &self.auth, params)
            .await?;
        Ok((response, sent_at))
    }

    /// A token request whose answer must be a token response.
    pub(crate) async fn request_tokens(
        &self,
        params: &[(&str, &str)],
    ) -> Result<Tokens, ClientError> {
        let (response, sent_at) = self.post(EndpointKind::Token, params).await?;
        parse_tokens(&response, sent_at)
    }
}

/// Builder settings common to every flow.
#[derive(Debug, Default)]
pub(crate) struct CommonSettings {
    pub(crate) client_id: String,
    pub(crate) secret: Option<ClientSecret>,
    pub(crate) method: ClientAuthMethod,
    pub(crate) issuer: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) device_authorization_endpoint: Option<String>,
    pub(crate) http: HttpConfig,
}

impl CommonSettings {
    pub(crate) fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            ..Self::default()
        }
    }

    /// Validates the settings and builds the client; `needs` are the endpoints the flow uses,
    /// each of which must be explicit or discoverable.
    pub(crate) fn build(self, needs: &[EndpointKind]) -> Result<Arc<OAuthClient>, ClientError> {
        if self.client_id.trim().is_empty() {
            return Err(ClientError::config("client id must not be empty"));
        }
        if self
            .secret
            .as_ref()
            .is_some_and(|secret| secret.secret().is_empty())
        {
            return Err(ClientError::config("client secret must not be empty"));
        }
        let url = |value: Option<String>, what: &str| {
            value.map(|value| parse_url(&value, what)).transpose()
        };
        if let Some(issuer) = &self.issuer {
            parse_url(issuer, "issuer")?;
        }
        let endpoints = Endpoints {
            issuer: self.issuer,
            token: url(self.token_endpoint, "token endpoint")?,
            authorization: url(self.authorization_endpoint, "authorization endpoint")?,
            device_authorization: url(
                self.device_authorization_endpoint,
                "device authorization endpoint",
            )?,
            ..Endpoints::default()
        };
        if endpoints.issuer.is_none() {
            for kind in needs {
                if endpoints.explicit(*kind).is_none() {
                    return Err(ClientError::config(format!(
                        "set an issuer (for discovery) or the {} explicitly",
                        kind.label()
                    )));
                }
            }
        }
        Ok(Arc::new(OAuthClient {
            auth: ClientCredentialsAuth {
                client_id: self.client_id,
                secret: self.secret,
                method: self.method,
            },
            endpoints,
            transport: self.http.build()?,
        }))
    }
}

/// Adds the builder methods every flow shares to a builder with a `common: CommonSettings` field.
macro_rules! common_builder_methods {
    () => {
        /// The issuer URL, exactly as it appears in tokens' `iss` (for Keycloak
        /// `{base}/realms/{realm}`). Endpoints not set explicitly are discovered from
        /// `{issuer}/.well-known/openid-configuration` on first use; the document's `issuer` must
        /// equal this value.
        pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
            self.common.issuer = Some(issuer.into());
            self
        }

        /// The token endpoint, instead of discovering it.
        pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
            self.common.token_endpoint = Some(url.into());
            self
        }

        /// How the client secret is sent
        /// ([`ClientAuthMethod::Basic`](crate::client::ClientAuthMethod::Basic) by default).
        /// Ignored without a secret.
        pub fn auth_method(mut self, method: $crate::client::ClientAuthMethod) -> Self {
            self.common.method = method;
            self
        }

        /// HTTP settings: client, timeouts, retries ([`HttpConfig`](crate::client::HttpConfig)).
        pub fn http(mut self, http: $crate::client::HttpConfig) -> Self {
            self.common.http = http;
            self
        }
    };
}

pub(crate) use common_builder_methods;
