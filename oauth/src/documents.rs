//! Client ID Metadata Documents (the registration MCP 2026-07-28 prefers):
//! a client whose `client_id` is an `https` URL is described by the JSON
//! document at that URL, fetched when it first asks to authorize and kept
//! for a few minutes. No registration call, nothing stored.
//!
//! Anyone can make berth fetch a URL this way, so the fetch is fenced: https
//! only, no redirects, a short timeout, a small body, and no private,
//! loopback or link-local address unless the operator allows them (a test,
//! or clients hosted inside the network).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Deserialize;
use url::Url;

use crate::clients::{Client, check_redirect_uri};

/// How long a fetched document is trusted before it is fetched again.
const FRESH: Duration = Duration::from_secs(300);

/// Largest document read (the draft suggests 5 KB).
const MAX_BYTES: usize = 5 * 1024;

/// Longest a fetch may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How documents are fetched (over https, trusting the system's roots and
/// those given to [`crate::trust_extra_roots`]).
#[derive(Debug, Clone, Default)]
pub struct DocumentsConfig {
    /// Fetch from private, loopback and link-local addresses too.
    pub allow_private: bool,
}

/// The documents fetched so far.
pub(crate) struct Documents {
    config: DocumentsConfig,
    cache: RwLock<HashMap<String, (Instant, Client)>>,
}

/// Whether `client_id` names a metadata document: an https URL with a path,
/// no fragment and no credentials.
pub fn is_document_url(client_id: &str) -> bool {
    Url::parse(client_id).is_ok_and(|u| {
        u.scheme() == "https"
            && u.path() != "/"
            && u.fragment().is_none()
            && u.username().is_empty()
            && u.password().is_none()
            && u.host_str().is_some()
    })
}

/// The document's fields berth reads.
#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

impl Documents {
    pub(crate) fn new(config: DocumentsConfig) -> Self {
        Self { config, cache: RwLock::default() }
    }

    /// The client a fetched document described, however long ago (a
    /// refresh token outlives the cache; the client was vetted when it got
    /// its first code).
    pub(crate) fn known(&self, client_id: &str) -> Option<Client> {
        self.cache.read().get(client_id).map(|(_, c)| c.clone())
    }

    /// The client described at `url`, fetched unless fetched lately.
    pub(crate) async fn client(&self, url: &str) -> Result<Client, String> {
        if let Some((at, c)) = self.cache.read().get(url)
            && at.elapsed() < FRESH
        {
            return Ok(c.clone());
        }
        let client = vet(url, self.fetch(url).await?)?;
        tracing::info!(client_id = %url, name = %client.client_name, "client metadata document fetched");
        self.cache.write().insert(url.to_owned(), (Instant::now(), client.clone()));
        Ok(client)
    }

    async fn fetch(&self, url: &str) -> Result<Document, String> {
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        let host = parsed.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("resolving {host}: {e}"))?;
        let addr = addrs
            .into_iter()
            .find(|a| self.config.allow_private || is_public(a.ip()))
            .ok_or_else(|| format!("{host} resolves to no public address"))?;
        let http = crate::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .https_only(true)
            .resolve(host, addr)
            .build()
            .map_err(|e| e.to_string())?;
        let mut res = http
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching it: {}", causes(&e)))?;
        if !res.status().is_success() {
            return Err(format!("fetching it answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("reading it: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BYTES {
                return Err(format!("it is larger than {MAX_BYTES} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("it is not a client metadata document: {e}"))
    }
}

/// An error and what caused it, down to the root (reqwest's own message
/// says only that sending failed).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// The client a document describes, if it may be one.
fn vet(url: &str, doc: Document) -> Result<Client, String> {
    if doc.client_id != url {
        return Err(format!("its client_id is {:?}, not its own URL", doc.client_id));
    }
    if doc.redirect_uris.is_empty() {
        return Err("it lists no redirect_uris".into());
    }
    for uri in &doc.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if doc.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
        return Err("only public clients (token_endpoint_auth_method \"none\") are supported".into());
    }
    if let Some(g) =
        doc.grant_types.iter().flatten().find(|g| !["authorization_code", "refresh_token"].contains(&g.as_str()))
    {
        return Err(format!("grant type {g} is not supported"));
    }
    if doc.response_types.iter().flatten().any(|r| r != "code") {
        return Err("only the \"code\" response type is supported".into());
    }
    let host = Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    if doc.client_name.as_ref().is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err("client_name must be at most 100 printable characters".into());
    }
    // The consent page names the host the document came from: a name alone
    // is the client's to choose.
    let name = match doc.client_name {
        Some(n) => format!("{n} ({host})"),
        None => host,
    };
    Ok(Client {
        client_id: url.to_owned(),
        client_id_issued_at: crate::token::now(),
        redirect_uris: doc.redirect_uris,
        client_name: name,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        token_endpoint_auth_method: "none".into(),
    })
}

/// Whether `ip` is an address on the public internet.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_urls_with_a_path_are_documents() {
        assert!(is_document_url("https://app.example/oauth/client.json"));
        for no in [
            "berth-client-1234",
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example",
            "https://u:p@app.example/c.json",
            "https://app.example/c.json#x",
        ] {
            assert!(!is_document_url(no), "{no}");
        }
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_document_must_name_itself_and_be_a_public_client() {
        let url = "https://app.example/client.json";
        let doc = |v: serde_json::Value| serde_json::from_value::<Document>(v).unwrap();
        let ok = vet(
            url,
            doc(json!({"client_id": url, "client_name": "App", "redirect_uris": ["http://127.0.0.1:3000/cb"]})),
        );
        assert_eq!(ok.unwrap().client_name, "App (app.example)");
        let cases = [
            (
                json!({"client_id": "https://evil.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"]}),
                "not its own URL",
            ),
            (json!({"client_id": url}), "no redirect_uris"),
            (json!({"client_id": url, "redirect_uris": ["javascript:alert(1)"]}), ""),
            (
                json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "public clients",
            ),
            (
                json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}),
                "client_credentials",
            ),
        ];
        for (v, said) in cases {
            let err = vet(url, doc(v)).unwrap_err();
            assert!(err.contains(said), "{err}");
        }
    }
}
