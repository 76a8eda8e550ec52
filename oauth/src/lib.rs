//! berth's OAuth: berth as the OAuth 2.1 authorization server and resource
//! server for its MCP URLs, the sealed store of connectors' static secrets,
//! sign-in through an upstream OpenID Connect provider, and the per-user
//! credential broker for upstream tokens.
//!
//! The crate knows nothing of MCP, HTTP routing or the catalog: it takes
//! parsed requests and returns what to answer ([`AuthorizationServer`]).

mod broker;
mod clients;
pub mod db;
mod documents;
mod error;
mod grants;
mod keys;
mod login;
mod pats;
mod seal;
mod secrets;
mod server;
mod tls;
mod token;
mod upstream;
mod users;

pub use broker::{AccountStatus, Broker, BrokerError, Fresh, ProviderInfo};
pub use clients::{Client, ClientMetadata, Clients};
pub use documents::{DocumentsConfig, is_document_url};
pub use error::OAuthError;
pub use keys::{KeyError, Keyring};
pub use login::{Identity, LoginError, OidcLogin};
pub use pats::{PREFIX as PAT_PREFIX, PatError, PatInfo, PatUse, Pats};
pub use seal::{SealError, Sealer};
pub use secrets::{SecretError, SecretInfo, SecretStore};
pub use server::{AuthConfig, AuthorizationServer, AuthorizeError, AuthorizeParams, Consent, TokenResponse};
pub use tls::{install_tls, trust_extra_roots};
pub use token::{AccessClaims, TokenError};
pub use upstream::{ProviderConfig, UpstreamError, now_ms};
pub use users::Users;
