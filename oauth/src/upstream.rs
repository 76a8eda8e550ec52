//! berth as an OAuth 2.0 / OpenID Connect *client* of another server: the
//! identity provider users sign in with, and the providers whose tokens the
//! credential broker keeps for connectors. One type for both, because both
//! are an authorization code flow with PKCE against endpoints found by
//! discovery.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

/// An upstream server and berth's registration with it, as an admin
/// configures it. Either `issuer` (endpoints found by OIDC discovery) or
/// both endpoints are given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The OIDC issuer; its `/.well-known/openid-configuration` names the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Where users are sent to consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// berth's client id there.
    pub client_id: String,
    /// berth's client secret there (sealed at rest; never returned by an API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes asked for when none are named by the connector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (e.g. `access_type=offline`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_params: BTreeMap<String, String>,
}

/// Why talking to an upstream server failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The configuration cannot work.
    #[error("provider configuration: {0}")]
    Config(String),
    /// Discovery failed.
    #[error("discovery at {url}: {reason}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The token endpoint refused or failed.
    #[error("token endpoint: {0}")]
    Token(String),
}

/// The `id_token` a token response carries when the scope had `openid`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The ID token, a JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type Response = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Response,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from an upstream token endpoint.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token, if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// When the access token expires, ms since the epoch (`None`: not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    /// The ID token, when the scope had `openid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("expires_ms", &self.expires_ms).finish_non_exhaustive()
    }
}

/// A provider with its endpoints resolved, ready for the code flow.
pub struct Upstream {
    client: OAuthClient,
    /// The issuer discovery confirmed, for ID token checks.
    pub issuer: Option<String>,
    config: ProviderConfig,
    http: Http,
}

/// An authorization request in flight: the URL to send the browser to and
/// what its callback needs.
pub struct Authorization {
    /// Where the browser goes.
    pub url: Url,
    /// The `state` the callback must bring back.
    pub state: String,
    /// The PKCE verifier for the exchange.
    pub verifier: Zeroizing<String>,
}

/// Milliseconds since the epoch, the unit of stored expiries.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// An HTTP client for upstream servers: no redirects followed (a token
/// endpoint that redirects is not trusted), bounded time.
fn http_client() -> reqwest::Client {
    crate::tls::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default()
}

impl Upstream {
    /// Resolves `config`'s endpoints (by discovery when only the issuer is
    /// given), with `redirect` as berth's callback URL.
    pub async fn resolve(config: ProviderConfig, redirect: &str) -> Result<Self, UpstreamError> {
        let http = Http(http_client());
        let (mut auth, mut token) = (config.authorization_endpoint.clone(), config.token_endpoint.clone());
        let mut issuer = None;
        if let Some(iss) = &config.issuer
            && (auth.is_none() || token.is_none())
        {
            let url = format!("{}/.well-known/openid-configuration", iss.trim_end_matches('/'));
            let doc: serde_json::Value = async { http.0.get(&url).send().await?.error_for_status()?.json().await }
                .await
                .map_err(|e: reqwest::Error| UpstreamError::Discovery { url: url.clone(), reason: e.to_string() })?;
            let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            if field("issuer").as_deref() != Some(iss.as_str()) {
                return Err(UpstreamError::Discovery { url, reason: "the document names another issuer".into() });
            }
            auth = auth.or_else(|| field("authorization_endpoint"));
            token = token.or_else(|| field("token_endpoint"));
            issuer = Some(iss.clone());
        }
        let bad = |what: &str| UpstreamError::Config(format!("{what} is missing or not a URL"));
        let auth = AuthUrl::new(auth.ok_or_else(|| bad("authorization_endpoint"))?)
            .map_err(|_| bad("authorization_endpoint"))?;
        let token = TokenUrl::new(token.ok_or_else(|| bad("token_endpoint"))?).map_err(|_| bad("token_endpoint"))?;
        let redirect = RedirectUrl::new(redirect.to_owned()).map_err(|_| bad("the callback URL"))?;
        let mut client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_redirect_uri(redirect);
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(Self { client, issuer, config, http })
    }

    /// Starts a code flow asking for `scopes` (the provider's defaults when
    /// empty), with `extra` parameters (such as an OIDC `nonce`).
    pub fn authorize(&self, scopes: &[String], extra: &[(&str, &str)]) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = if scopes.is_empty() { &self.config.scopes } else { scopes };
        let mut req = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        for (k, v) in
            self.config.extra_params.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(extra.iter().copied())
        {
            req = req.add_extra_param(k, v);
        }
        let (url, state) = req.url();
        Authorization { url, state: state.secret().clone(), verifier: Zeroizing::new(verifier.secret().clone()) }
    }

    /// Exchanges a code from the callback.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, UpstreamError> {
        let res = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| UpstreamError::Token(describe(&e)))?;
        Ok(tokens(res, None))
    }

    /// Trades a refresh token for fresh tokens; the old refresh token is
    /// kept when the server does not rotate it.
    pub async fn refresh(&self, refresh: &str) -> Result<Tokens, UpstreamError> {
        let token = RefreshToken::new(refresh.to_owned());
        let res = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(|e| UpstreamError::Token(describe(&e)))?;
        Ok(tokens(res, Some(refresh)))
    }
}

/// oauth2's HTTP seam over reqwest, with a `Send` future so the flows can
/// run inside request handlers.
#[derive(Clone)]
struct Http(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, req: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let res = self.0.execute(req.try_into()?).await?;
            let mut out = http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            let body = res.bytes().await?.to_vec();
            Ok(out.body(body).unwrap_or_default())
        })
    }
}

fn tokens(res: Response, old_refresh: Option<&str>) -> Tokens {
    Tokens {
        access: res.access_token().secret().clone(),
        refresh: res.refresh_token().map(|r| r.secret().clone()).or_else(|| old_refresh.map(str::to_owned)),
        expires_ms: res.expires_in().map(|d| now_ms().saturating_add(d.as_millis() as i64)),
        id_token: res.extra_fields().id_token.clone(),
    }
}

/// The error without anything secret: the server's `error` code and text.
fn describe<E: std::error::Error>(e: &oauth2::RequestTokenError<E, BasicErrorResponse>) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => {
            format!("{}{}", r.error(), r.error_description().map(|d| format!(": {d}")).unwrap_or_default())
        }
        oauth2::RequestTokenError::Request(e) => format!("request failed: {e}"),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable response: {e}"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}
