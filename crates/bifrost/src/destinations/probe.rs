//! What Test and browse ask of an opened destination, and how a failure is told: the step,
//! then the service's own status, code and message, found in object_store's error text (its
//! status is not reachable by type; docs/OBJECT-STORE-NOTES.md, Errors).

use std::borrow::Cow;
use std::error::Error;

use mover_proto::destinations::{ListedObject, Listing, TestResult, MAX_BROWSE_ENTRIES};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::list::PaginatedListOptions;
use object_store::{ObjectStoreExt, PutPayload};

use super::cloud::Bucket;
use super::{check, scrub, DestinationError};

/// Longest failure text passed on.
const MAX_TEXT: usize = 400;

/// Lists one entry under the prefix, writes `.mover-test-RANDOM` there and deletes it.
/// `secrets` are scrubbed from any text that would quote one.
pub async fn test(bucket: &Bucket, secrets: &[String]) -> TestResult {
    let failed = |step: &str, e: object_store::Error| {
        let error = scrub(&format!("{step} failed: {}", describe(&e)), secrets);
        tracing::info!(destination = %bucket.id, %error, "destination test failed");
        TestResult {
            ok: false,
            error: Some(error),
        }
    };
    let top = folder(&bucket.prefix);
    let one = PaginatedListOptions {
        max_keys: Some(1),
        delimiter: Some(Cow::Borrowed("/")),
        ..Default::default()
    };
    if let Err(e) = bucket.list.list_paginated(top.as_deref(), one).await {
        return failed("list", e);
    }
    let mut tag = [0u8; 8];
    let _ = getrandom::fill(&mut tag);
    let name: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let probe = match bucket.key(&format!(".mover-test-{name}")) {
        Ok(p) => p,
        Err(e) => return failed("write", e.into()),
    };
    let body = PutPayload::from_static(b"Mover Agent destination test; safe to delete\n");
    if let Err(e) = bucket.store.put(&probe, body).await {
        return failed("write", e);
    }
    if let Err(e) = bucket.store.delete(&probe).await {
        return failed("delete", e);
    }
    TestResult {
        ok: true,
        error: None,
    }
}

/// `prefix` as a listing prefix: `None` for the top, else `prefix/`.
fn folder(prefix: &str) -> Option<String> {
    (!prefix.is_empty()).then(|| format!("{prefix}/"))
}

/// One level of the destination below `rel` (relative to its prefix), at most
/// [`MAX_BROWSE_ENTRIES`] entries; names come back relative to the prefix.
pub async fn browse(
    bucket: &Bucket,
    rel: &str,
    secrets: &[String],
) -> Result<Listing, DestinationError> {
    let rel = check::prefix(rel, "prefix").map_err(DestinationError::Invalid)?;
    let full = bucket
        .key(&rel)
        .map_err(|e| DestinationError::Invalid(e.to_string()))?
        .as_ref()
        .to_owned();
    let opts = PaginatedListOptions {
        max_keys: Some(MAX_BROWSE_ENTRIES),
        delimiter: Some(Cow::Borrowed("/")),
        ..Default::default()
    };
    let page = bucket
        .list
        .list_paginated(folder(&full).as_deref(), opts)
        .await
        .map_err(|e| {
            DestinationError::Service(scrub(&format!("list failed: {}", describe(&e)), secrets))
        })?;
    let strip = |p: &str| -> String {
        if bucket.prefix.is_empty() {
            return p.to_owned();
        }
        p.strip_prefix(&bucket.prefix)
            .map(|r| r.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| p.to_owned())
    };
    let mut folders: Vec<String> = page
        .result
        .common_prefixes
        .iter()
        .map(|p| format!("{}/", strip(p.as_ref())))
        .collect();
    let mut objects: Vec<ListedObject> = page
        .result
        .objects
        .iter()
        .map(|o| ListedObject {
            key: strip(o.location.as_ref()),
            size: o.size,
            modified: rfc3339(o.last_modified.timestamp()),
        })
        .collect();
    folders.sort();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let mut truncated = page.page_token.is_some();
    if folders.len() + objects.len() > MAX_BROWSE_ENTRIES {
        truncated = true;
        folders.truncate(MAX_BROWSE_ENTRIES);
        objects.truncate(MAX_BROWSE_ENTRIES - folders.len());
    }
    Ok(Listing {
        prefix: rel,
        folders,
        objects,
        truncated,
    })
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What went wrong, as an admin can act on it: `403 AccessDenied: Access Denied`, or how the
/// connection failed.
pub fn describe(e: &object_store::Error) -> String {
    let mut level: Option<&(dyn Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(err) = level {
        if let Some(h) = err.downcast_ref::<HttpError>() {
            return transport(h);
        }
        chain.push(err.to_string());
        level = Error::source(err);
    }
    service_text(&chain.join(": "))
}

fn transport(h: &HttpError) -> String {
    let mut root: &(dyn Error + 'static) = h;
    while let Some(next) = Error::source(root) {
        root = next;
    }
    let why = root.to_string();
    let text = match h.kind() {
        HttpErrorKind::Connect => format!("cannot connect to the service: {why}"),
        HttpErrorKind::Timeout => "the service did not answer in time".to_owned(),
        _ => format!("the connection to the service failed: {why}"),
    };
    shorten(&text)
}

/// The status, `<Code>` and first line of `<Message>` in an error text; the text itself,
/// shortened, when it has none of them.
pub fn service_text(text: &str) -> String {
    const STATUS: &str = "non-2xx status code: ";
    let status = text
        .find(STATUS)
        .map(|i| &text[i + STATUS.len()..])
        .and_then(|rest| rest.get(..3).map(|s| (s, rest)))
        .filter(|(s, _)| s.bytes().all(|b| b.is_ascii_digit()));
    let code = between(text, "<Code>", "</Code>");
    let message = between(text, "<Message>", "</Message>")
        .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()));
    let out = match (status, code, message) {
        (Some((s, _)), Some(c), Some(m)) => format!("{s} {c}: {m}"),
        (Some((s, _)), Some(c), None) => format!("{s} {c}"),
        (Some((_, rest)), None, _) => {
            // "503 Service Unavailable: <body>": the status and its reason phrase.
            rest.split(':').next().unwrap_or(rest).trim().to_owned()
        }
        (None, Some(c), m) => format!("{c}{}", m.map(|m| format!(": {m}")).unwrap_or_default()),
        (None, None, _) => text.to_owned(),
    };
    shorten(&out)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim())
}

fn shorten(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_status_code_and_message_are_found_in_the_text() {
        let s3 = "Generic S3 error: Error performing PUT http://127.0.0.1:5/b/k in 3ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>";
        assert_eq!(service_text(s3), "403 AccessDenied: Access Denied");
        let azure = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationFailure</Code><Message>Server failed to authenticate the request.\nRequestId:abc\nTime:2026</Message></Error>";
        assert_eq!(
            service_text(azure),
            "403 AuthorizationFailure: Server failed to authenticate the request."
        );
        let bare = "Error performing GET u - Server returned non-2xx status code: 503 Service Unavailable: ";
        assert_eq!(service_text(bare), "503 Service Unavailable");
        let code_only = "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>";
        assert_eq!(service_text(code_only), "404 NoSuchBucket");
        assert_eq!(service_text("something else"), "something else");
        assert!(service_text(&"é".repeat(1000)).ends_with('…'));
    }

    #[test]
    fn a_refused_connection_is_named_by_kind() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                HttpErrorKind::Connect,
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
            )),
        };
        assert_eq!(
            describe(&e),
            "cannot connect to the service: Connection refused"
        );
    }
}
