//! The web console: static files embedded in the binary, served with a strict CSP.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};

use crate::App;

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");
const ICON: &str = include_str!("../console/icon.svg");

/// Nothing outside Bifrost, no inline script: the console works air-gapped and resists injection.
const CSP: &str = concat!(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; ",
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
);

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `/` and the console's assets.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_carry_valid_security_headers() {
        for (ct, body) in [
            ("text/html; charset=utf-8", INDEX),
            ("text/javascript; charset=utf-8", APP_JS),
        ] {
            let res = asset(ct, body);
            assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
    }
}
