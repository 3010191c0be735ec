//! What an object store said, as a file's failure: the HTTP status (typed where object_store
//! types it, else read from its text) and the service's own code and message.

use super::signed::element;
use crate::failure::CopyError;

/// The longest service message kept in a report.
const MAX_MESSAGE: usize = 600;

/// The status object_store's error carries: typed for a few, in the text for the rest.
pub fn status_of(e: &object_store::Error) -> Option<u16> {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Some(404),
        E::PermissionDenied { .. } => Some(403),
        E::Unauthenticated { .. } => Some(401),
        E::AlreadyExists { .. } => Some(409),
        E::Precondition { .. } => Some(412),
        _ => {
            let text = e.to_string();
            let at = text.find("status code: ")? + "status code: ".len();
            text.get(at..at + 3)?.parse().ok()
        }
    }
}

/// `STATUS CODE: MESSAGE` from the service's answer where it sent one, else object_store's text.
pub fn message_of(e: &object_store::Error) -> String {
    let text = e.to_string();
    let code = element(&text, "Code");
    let message = element(&text, "Message");
    let mut out = match (status_of(e), code, message) {
        (Some(s), Some(c), Some(m)) => format!("{s} {c}: {m}"),
        (Some(s), Some(c), None) => format!("{s} {c}"),
        _ => text,
    };
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// The failure of `step` (`"put"`, `"complete"`, …): worth another attempt for a 5xx, 408,
/// 429 or a failed connection.
pub fn failure(step: &str, e: object_store::Error) -> CopyError {
    let status = status_of(&e);
    if status == Some(400) && damaged(&e.to_string()) {
        return CopyError::Checksum(format!("{step}: {}", message_of(&e)));
    }
    let transient = match status {
        Some(s) => s >= 500 || s == 408 || s == 429,
        None => matches!(e, object_store::Error::Generic { .. }),
    };
    CopyError::Service {
        status,
        message: format!("{step}: {}", message_of(&e)),
        transient,
    }
}

/// The service found that a body does not hash to the checksum sent with it (S3's
/// `x-amz-checksum-sha256` or `x-amz-content-sha256`, Azure's `Content-MD5`): it changed on the
/// way, so sending it again is the cure.
pub fn damaged(answer: &str) -> bool {
    let code = [
        "BadDigest",
        "Md5Mismatch",
        "XAmzContentSHA256Mismatch",
        "InvalidDigest",
    ]
    .iter()
    .any(|code| answer.contains(&format!("<Code>{code}</Code>")));
    // Azurite answers InvalidOperation "Provided contentMD5 doesn't match."
    let said = element(answer, "Message").is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("md5") && m.contains("match")
    });
    code || said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        }
    }

    #[test]
    fn the_services_own_words_are_kept() {
        let e = generic(
            "Error performing PUT http://x/b/k in 3ms, after 2 retries - Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        );
        assert_eq!(status_of(&e), Some(503));
        assert_eq!(
            message_of(&e),
            "503 SlowDown: Please reduce your request rate."
        );
        let CopyError::Service {
            status,
            transient,
            message,
        } = failure("put part", e)
        else {
            unreachable!()
        };
        assert_eq!((status, transient), (Some(503), true));
        assert!(message.starts_with("put part: 503 SlowDown"));
    }

    #[test]
    fn refusals_are_final() {
        let e = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "<Code>AccessDenied</Code><Message>no</Message>"
                .to_owned()
                .into(),
        };
        let f = failure("put", e);
        assert!(matches!(
            f,
            CopyError::Service {
                status: Some(403),
                transient: false,
                ..
            }
        ));
        let long = generic(&"x".repeat(5000));
        assert!(message_of(&long).len() <= MAX_MESSAGE + 3);
    }
}
