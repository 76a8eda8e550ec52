//! Checks every request passes before berth reads its body: DNS-rebinding
//! defence (`Host`), cross-site defence (`Origin`), media types and nesting.
//!
//! A browser page on any site can send requests to a loopback server; the only
//! things that give such a request away are `Origin` and (after DNS
//! rebinding) a `Host` that is not berth's own name.

use http::{HeaderMap, StatusCode, header};

/// Which `Host` and `Origin` values berth accepts.
#[derive(Debug, Clone)]
pub struct Allow {
    /// Host names (without port) allowed in `Host`; `*` allows any.
    pub hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) allowed in `Origin`; `*` allows any.
    /// Origins whose host is in `hosts` are allowed too.
    pub origins: Vec<String>,
}

impl Default for Allow {
    fn default() -> Self {
        Self { hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()], origins: Vec::new() }
    }
}

/// Why a request was refused at the door.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status to answer with.
    pub status: StatusCode,
    /// Why, for the error body.
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

impl Allow {
    /// Validates `Host` and `Origin`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(h) if self.host_allowed(strip_port(h)) => {}
            Some(h) => return Err(refuse(StatusCode::FORBIDDEN, format!("Host '{h}' is not allowed"))),
            None => return Err(refuse(StatusCode::BAD_REQUEST, "missing Host header")),
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.origin_allowed(origin) {
                return Err(refuse(StatusCode::FORBIDDEN, format!("Origin '{origin}' is not allowed")));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.hosts.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(host))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let Some((scheme, rest)) = origin.split_once("://") else { return false };
        matches!(scheme, "http" | "https") && !rest.contains('/') && self.host_allowed(strip_port(rest))
    }
}

fn strip_port(authority: &str) -> &str {
    if let Some(end) = authority.strip_prefix('[').and_then(|r| r.find(']')) {
        return &authority[1..=end];
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Whether an `Accept` header lists a media type (or a wildcard for it).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|part| {
        let m = part.split(';').next().unwrap_or("").trim();
        m == media || m == "*/*" || m == format!("{kind}/*")
    })
}

/// Requires a JSON body.
pub fn json_content(headers: &HeaderMap) -> Result<(), Refusal> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Type must be application/json, got '{ct}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_and_origin() {
        let allow = Allow::default();
        assert!(allow.check(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(allow.check(&headers(&[("host", "[::1]:8080")])).is_ok());
        assert!(allow.check(&headers(&[("host", "localhost")])).is_ok());
        let e = allow.check(&headers(&[("host", "evil.example:8080")])).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(allow.check(&headers(&[("host", "localhost:1"), ("origin", "http://localhost:3000")])).is_ok());
        let e = allow.check(&headers(&[("host", "localhost:1"), ("origin", "https://evil.example")])).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(allow.check(&headers(&[("host", "localhost:1"), ("origin", "null")])).is_err());
        let open = Allow { hosts: vec!["*".into()], origins: vec!["https://app.example".into()] };
        assert!(open.check(&headers(&[("host", "x.example"), ("origin", "https://app.example")])).is_ok());
    }

    #[test]
    fn accept_parsing() {
        let h = headers(&[("accept", "application/json, text/event-stream;q=0.9")]);
        assert!(accepts(&h, "text/event-stream") && accepts(&h, "application/json"));
        assert!(!accepts(&headers(&[("accept", "application/json")]), "text/event-stream"));
        assert!(accepts(&headers(&[("accept", "*/*")]), "text/event-stream"));
    }
}
