//! The operator's console at `/admin/` and a signed-in user's account page
//! at `/account/`: static HTML, CSS and vanilla JavaScript compiled into the
//! binary (`console/`), so there is no front-end toolchain to run and nothing
//! to deploy beside berth.
//!
//! The pages hold no authority of their own. The console calls the admin API
//! with the bearer token the operator pastes into it (kept in the tab's
//! `sessionStorage`, sent by `fetch` with cookies omitted), so no cookie ever
//! authorizes an admin call and a cross-site page has nothing to forge. The
//! account page reads only `/account/providers`, the signed-in user's own
//! standing, and connects accounts through the existing `/connect` links.

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, header};

use super::AppState;

/// Scripts, styles and fetches from berth itself only, and no inline script
/// or style at all: data the pages render can never become code, even if
/// some value slipped past the scripts' text-only rendering.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One file of the pages.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

const CONSOLE: Asset = Asset { body: include_str!("console/index.html"), content_type: HTML };
const CONSOLE_JS: Asset = Asset { body: include_str!("console/console.js"), content_type: JS };
const STYLE: Asset = Asset { body: include_str!("console/console.css"), content_type: CSS };
const ICON: Asset = Asset { body: include_str!("console/favicon.svg"), content_type: SVG };
const ACCOUNT: Asset = Asset { body: include_str!("console/account.html"), content_type: HTML };
const ACCOUNT_JS: Asset = Asset { body: include_str!("console/account.js"), content_type: JS };

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(|| async { serve(&CONSOLE) }))
        .route("/admin/console.js", get(|| async { serve(&CONSOLE_JS) }))
        .route("/admin/console.css", get(|| async { serve(&STYLE) }))
        .route("/admin/favicon.svg", get(|| async { serve(&ICON) }))
        .route("/account", get(|| async { Redirect::permanent("/account/") }))
        .route("/account/", get(|| async { serve(&ACCOUNT) }))
        .route("/account/account.js", get(|| async { serve(&ACCOUNT_JS) }))
        .merge(super::account::routes())
}

/// An asset with the headers every page file carries: the policy above,
/// no MIME sniffing (a JSON answer is never run as script), no framing
/// (no clickjacking of the policy buttons), no referrer, and revalidation so
/// a new berth's pages replace the old ones at once.
fn serve(asset: &Asset) -> Response {
    let mut res = asset.body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_only_files_that_are_served() {
        // Every script and stylesheet a page names must be one of the routes
        // above (the policy allows nothing else), and no page has inline script.
        for page in [CONSOLE.body, ACCOUNT.body] {
            assert!(!page.contains("<script>") && !page.contains("onclick") && !page.contains("style="));
            for src in page.split("src=\"").skip(1).chain(page.split("href=\"").skip(1)) {
                let url = src.split('"').next().unwrap_or_default();
                if url.ends_with(".js") || url.ends_with(".css") || url.ends_with(".svg") {
                    assert!(
                        ["/admin/console.js", "/admin/console.css", "/admin/favicon.svg", "/account/account.js"]
                            .contains(&url),
                        "{url} is not served"
                    );
                }
            }
        }
    }

    #[test]
    fn every_asset_carries_the_policy() {
        let res = serve(&CONSOLE_JS);
        assert_eq!(res.headers()[header::CONTENT_TYPE], JS);
        assert!(
            res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default().contains("script-src 'self'")
        );
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
