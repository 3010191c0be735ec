//! Validation of a destination's settings: pure functions that return the normalized value or
//! a message that says what is wrong and what is allowed. No message repeats a secret.

use mover_proto::destinations::{Secret, MAX_SECRET_BYTES};

/// A display name: trimmed, 1 to 100 characters, no control characters.
pub fn name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > 100 {
        return Err("a name has 1 to 100 characters".into());
    }
    if s.chars().any(char::is_control) {
        return Err("a name may not contain control characters".into());
    }
    Ok(s.to_owned())
}

/// An S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending
/// with a letter or digit, no `..`.
pub fn s3_bucket(s: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
        && edges_alnum(s)
        && !s.contains("..");
    ok.then(|| s.to_owned()).ok_or_else(|| {
        format!("{s:?} is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit")
    })
}

/// A GCS bucket name: 3-63 lowercase letters, digits, dots, hyphens and underscores (up to
/// 222 with dots), starting and ending with a letter or digit.
pub fn gcs_bucket(s: &str) -> Result<String, String> {
    let max = if s.contains('.') { 222 } else { 63 };
    let ok = (3..=max).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'))
        && edges_alnum(s)
        && !s.contains("..");
    ok.then(|| s.to_owned()).ok_or_else(|| {
        format!("{s:?} is not a GCS bucket name: 3 to 63 lowercase letters, digits, dots, hyphens and underscores, beginning and ending with a letter or digit")
    })
}

/// An Azure container name: 3-63 lowercase letters, digits and single hyphens, starting and
/// ending with a letter or digit.
pub fn azure_container(s: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && edges_alnum(s)
        && !s.contains("--");
    ok.then(|| s.to_owned()).ok_or_else(|| {
        format!("{s:?} is not an Azure container name: 3 to 63 lowercase letters, digits and single hyphens, beginning and ending with a letter or digit")
    })
}

/// An Azure storage account name: 3-24 lowercase letters and digits.
pub fn azure_account(s: &str) -> Result<String, String> {
    let ok =
        (3..=24).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9'));
    ok.then(|| s.to_owned()).ok_or_else(|| {
        format!("{s:?} is not an Azure storage account name: 3 to 24 lowercase letters and digits")
    })
}

fn edges_alnum(s: &str) -> bool {
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    alnum(s.as_bytes().first()) && alnum(s.as_bytes().last())
}

/// A key prefix or a path inside a destination: leading and trailing `/` dropped; no empty,
/// `.` or `..` segment, no NUL or other control character; at most 1,024 bytes (S3's key
/// limit). `""` is the top.
pub fn prefix(s: &str, what: &str) -> Result<String, String> {
    let p = s.trim_matches('/');
    if p.len() > 1024 {
        return Err(format!("{what} is longer than 1,024 bytes"));
    }
    if p.chars().any(char::is_control) {
        return Err(format!("{what} may not contain NUL or control characters"));
    }
    if p.is_empty() {
        return Ok(String::new());
    }
    for seg in p.split('/') {
        if matches!(seg, "" | "." | "..") {
            return Err(format!(
                "{what} {s:?} has an empty, '.' or '..' segment; give folders like \"a/b\""
            ));
        }
    }
    // object_store refuses some names of its own; refuse them here, where the user sees why.
    object_store::path::Path::parse(p).map_err(|e| format!("{what} {s:?}: {e}"))?;
    Ok(p.to_owned())
}

/// A service URL: `http://` or `https://`, a host, no user name or password in it, no query;
/// trailing `/` dropped.
pub fn endpoint(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("endpoint {s:?} {why}");
    let uri: http::Uri = s.trim().parse().map_err(|_| bad("is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("has no host"));
    };
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad(
            "must not carry a user name or password (give credentials in their own fields)",
        ));
    }
    if uri.query().is_some() {
        return Err(bad("must not have a query"));
    }
    Ok(s.trim().trim_end_matches('/').to_owned())
}

/// An S3 region: 1-64 lowercase letters, digits and hyphens.
pub fn region(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
    ok.then(|| s.to_owned())
        .ok_or_else(|| format!("{s:?} is not a region name (like us-east-1)"))
}

/// A credential: not empty, at most [`MAX_SECRET_BYTES`], no NUL.
pub fn secret(s: &Secret, what: &str) -> Result<(), String> {
    let v = s.expose();
    if v.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.len() > MAX_SECRET_BYTES {
        return Err(format!("{what} is longer than {MAX_SECRET_BYTES} bytes"));
    }
    if v.contains('\0') {
        return Err(format!("{what} contains a NUL byte"));
    }
    Ok(())
}

/// An Azure access key: a credential that is base64.
pub fn azure_key(s: &Secret) -> Result<(), String> {
    use base64::Engine;
    secret(s, "access_key")?;
    base64::engine::general_purpose::STANDARD
        .decode(s.expose().trim())
        .map(drop)
        .map_err(|_| "access_key is not base64 (copy the account's key 1 or key 2 whole)".into())
}

/// A service account key: a credential that is a JSON object with `client_email`,
/// `private_key_id` and `private_key`, as object_store reads it (the JSON parser's message is
/// kept out: it can quote the text).
pub fn service_account(s: &Secret) -> Result<(), String> {
    secret(s, "service_account_json")?;
    let v: serde_json::Value = serde_json::from_str(s.expose()).map_err(|_| {
        String::from(
            "service_account_json is not JSON: give the service account's key file, as text",
        )
    })?;
    let has = |k: &str| v.get(k).is_some_and(serde_json::Value::is_string);
    if !(has("client_email") && has("private_key_id") && has("private_key")) {
        return Err(
            "service_account_json needs \"client_email\", \"private_key_id\" and \"private_key\" (a service account's key file)".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Archive ").as_deref(), Ok("Archive"));
        assert!(name("").is_err());
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(101)).is_err());
        assert!(name(&"é".repeat(100)).is_ok());
        assert!(name("a\nb").is_err());
    }

    #[test]
    fn bucket_and_container_names_follow_the_services_rules() {
        assert!(
            s3_bucket("b").is_err(),
            "the issue's example is too short for S3"
        );
        assert!(s3_bucket("my-bucket.v2").is_ok());
        for bad in [
            "ab",
            "Bucket",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(s3_bucket(bad).is_err(), "{bad}");
        }
        assert!(azure_container("c-1").is_ok());
        for bad in ["c1", "a--b", "a.b", "Abc", "abc-"] {
            assert!(azure_container(bad).is_err(), "{bad}");
        }
        assert!(azure_account("devstoreaccount1").is_ok());
        for bad in ["ab", "dev-store", "Dev", &"a".repeat(25)] {
            assert!(azure_account(bad).is_err(), "{bad}");
        }
        assert!(gcs_bucket("my_bucket").is_ok());
        assert!(gcs_bucket("x").is_err());
    }

    #[test]
    fn prefixes_are_normalized_and_never_climb() {
        assert_eq!(prefix("", "prefix").as_deref(), Ok(""));
        assert_eq!(prefix("/", "prefix").as_deref(), Ok(""));
        assert_eq!(prefix("/a/b/", "prefix").as_deref(), Ok("a/b"));
        assert_eq!(
            prefix("dept/Finance é", "path").as_deref(),
            Ok("dept/Finance é")
        );
        for bad in ["a//b", "a/../b", "..", "./a", "a/.", "a\0b", "a\nb"] {
            assert!(prefix(bad, "prefix").is_err(), "{bad:?}");
        }
        assert!(prefix(&"a".repeat(1025), "prefix").is_err());
    }

    #[test]
    fn endpoints_are_http_urls_without_credentials() {
        assert_eq!(
            endpoint("http://127.0.0.1:9000/").as_deref(),
            Ok("http://127.0.0.1:9000")
        );
        assert!(endpoint("https://acct.blob.core.windows.net/x").is_ok());
        for bad in [
            "ftp://h",
            "127.0.0.1:9000",
            "http://user:pw@h",
            "http://h/?a=b",
            "not a url",
            "",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        let e = endpoint("http://AKIA:CANARY@h").unwrap_err();
        assert!(e.contains("user name or password"), "{e}");
    }

    #[test]
    fn secrets_are_bounded_and_never_quoted() {
        assert!(secret(&Secret::new("x"), "k").is_ok());
        assert!(secret(&Secret::new(""), "k").is_err());
        assert!(secret(&Secret::new("x".repeat(MAX_SECRET_BYTES + 1)), "k").is_err());
        let e = azure_key(&Secret::new("CANARY-not base64!")).unwrap_err();
        assert!(!e.contains("CANARY"), "{e}");
        let e = service_account(&Secret::new("{CANARY")).unwrap_err();
        assert!(!e.contains("CANARY"), "{e}");
        assert!(service_account(&Secret::new(
            r#"{"client_email":"a","private_key_id":"1","private_key":""}"#
        ))
        .is_ok());
        assert!(service_account(&Secret::new(r#"{"client_email":"a"}"#)).is_err());
        assert!(region("us-east-1").is_ok() && region("US").is_err());
    }
}
