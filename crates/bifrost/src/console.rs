//! The web console: static files embedded in the binary, served with a strict CSP.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};

use crate::App;

const INDEX: &str = include_str!("../console/index.html");
/// One embedded module: its name under `/assets/` and its text.
macro_rules! module {
    ($name:literal) => {
        ($name, include_str!(concat!("../console/", $name)))
    };
}

/// The console's ES modules, served at `/assets/NAME` (`app.js` imports the others).
const MODULES: &[(&str, &str)] = &[
    module!("app.js"),
    module!("api.js"),
    module!("signin.js"),
    module!("ui.js"),
    module!("browser.js"),
    module!("connectors.js"),
    module!("wizard.js"),
    module!("where.js"),
    module!("mappings.js"),
    module!("jobs.js"),
    module!("destinations.js"),
    module!("objects.js"),
    module!("audit.js"),
];
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
    let mut router = Router::new();
    for &(name, body) in MODULES {
        router = router.route(
            &format!("/assets/{name}"),
            get(move || async move { asset("text/javascript; charset=utf-8", body) }),
        );
    }
    router
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
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
            ("text/javascript; charset=utf-8", MODULES[0].1),
        ] {
            let res = asset(ct, body);
            assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
    }

    /// Every module a module imports, and every module `index.html` preloads, is served.
    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = MODULES.iter().map(|(n, _)| *n).collect();
        let mut named = Vec::new();
        for (_, body) in MODULES {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit("from './").next().unwrap_or_default();
                named.push(from.trim_end_matches("';").to_owned());
            }
        }
        for part in INDEX.split("href=\"/assets/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            if name.ends_with(".js") {
                named.push(name.to_owned());
            }
        }
        for name in &named {
            assert!(
                served.contains(&name.as_str()),
                "{name} is imported but not served"
            );
        }
        for name in served.iter().filter(|n| **n != "app.js") {
            assert!(
                named.iter().any(|x| x == name),
                "{name} is served but never imported"
            );
        }
    }
}
