//! API tokens: making one (`bft_` + 32 random bytes), checking what an admin asks for, and the
//! bootstrap admin token of `DATA/admin.token`. The database side is `store/tokens.rs`, the
//! HTTP side `api/tokens.rs`, the `bifrost token` commands `tokens/admin.rs`.

pub mod admin;

use mover_proto::tokens::{
    CreatedToken, NewToken, Token, MAX_EXPIRES_CHARS, MAX_LIVE_TOKENS, TOKEN_PREFIX,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::accounts::{check_label, Secret};
use crate::store::{NewTokenRow, Store, StoreError, TokenRow};

/// Why a token operation failed; the text says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request cannot be a token's (name, expiry).
    #[error("{0}")]
    Invalid(String),
    /// [`MAX_LIVE_TOKENS`] are live already.
    #[error("there are {MAX_LIVE_TOKENS} live API tokens already; revoke some first")]
    TooMany,
    /// No API token has the id.
    #[error("there is no API token with that id")]
    NotFound,
    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new token: [`TOKEN_PREFIX`] and 32 random bytes in hex (256 bits, so a fast hash of it is
/// as good as a slow one: there is nothing to guess).
pub fn new_secret() -> Result<Secret, TokenError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| TokenError::Random(e.to_string()))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(Secret::new(format!("{TOKEN_PREFIX}{hex}")))
}

/// BLAKE3 of a token, hex: the database keeps only this, and finds tokens by it.
pub fn hash(token: &str) -> String {
    blake3::hash(token.trim().as_bytes()).to_hex().to_string()
}

/// The Unix second `expires` names, which must be after `now`; `None` for never.
pub fn parse_expires(expires: Option<&str>, now: i64) -> Result<Option<i64>, TokenError> {
    let Some(text) = expires else {
        return Ok(None);
    };
    let bad = |why: &str| TokenError::Invalid(format!("expires: {why}"));
    if text.chars().count() > MAX_EXPIRES_CHARS {
        return Err(bad(&format!("at most {MAX_EXPIRES_CHARS} characters")));
    }
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| {
            bad("an RFC 3339 time such as 2027-03-01T00:00:00Z, or null for a token that never expires")
        })?
        .unix_timestamp();
    if at <= now {
        return Err(bad("that time has passed; give one in the future"));
    }
    Ok(Some(at))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A token row as the API lists it.
pub fn listed(row: TokenRow) -> Token {
    Token {
        id: row.id,
        name: row.name,
        role: row.role,
        created: row.created,
        expires: row.expires.map(rfc3339),
        last_used: row.last_used.map(rfc3339),
        revoked: row.revoked,
        created_by: row.created_by,
    }
}

/// Makes the API token `req` asks for, by `created_by`, at Unix second `now`; the answer holds
/// the secret, which is not kept.
pub async fn create(
    store: &Store,
    req: NewToken,
    created_by: &str,
    now: i64,
) -> Result<CreatedToken, TokenError> {
    check_label("a token name", &req.name).map_err(TokenError::Invalid)?;
    let expires = parse_expires(req.expires.as_deref(), now)?;
    let secret = new_secret()?;
    let new = NewTokenRow {
        name: req.name,
        role: req.role,
        hash: hash(secret.expose()),
        expires,
        created_by: created_by.to_owned(),
    };
    let row = store
        .add_token(new, now, MAX_LIVE_TOKENS)
        .await?
        .ok_or(TokenError::TooMany)?;
    Ok(CreatedToken {
        info: listed(row),
        token: secret,
    })
}

/// Revokes API token `id` and ends its sessions; returns how many ended.
pub async fn revoke(store: &Store, id: &str) -> Result<usize, TokenError> {
    // Ids are 16 hex characters: anything else is no token's, without a database look.
    if !(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(TokenError::NotFound);
    }
    store
        .revoke_token(id.to_owned())
        .await?
        .ok_or(TokenError::NotFound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed_without_whitespace() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
        assert!(a.expose().starts_with("bft_"));
        assert_eq!(hash(a.expose()), hash(&format!(" {}\n", a.expose())));
        assert_ne!(hash(a.expose()), hash(b.expose()));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn expiry_is_an_rfc3339_time_in_the_future() {
        let now = 1_800_000_000; // 2027-01-15T08:00:00Z
        assert_eq!(parse_expires(None, now).unwrap(), None);
        assert_eq!(
            parse_expires(Some("2027-01-15T08:00:01Z"), now).unwrap(),
            Some(now + 1)
        );
        assert_eq!(
            parse_expires(Some("2027-01-15T10:00:00+01:00"), now).unwrap(),
            Some(now + 3600)
        );
        // Now itself has passed: a token must work for at least a second.
        for past in [
            "2027-01-15T08:00:00Z",
            "2027-01-15T09:00:00+01:00",
            "1970-01-01T00:00:00Z",
        ] {
            let e = parse_expires(Some(past), now).unwrap_err().to_string();
            assert!(e.contains("has passed"), "{past}: {e}");
        }
        for bad in [
            "90d",
            "",
            "2027-01-15",
            "tomorrow",
            "2027-01-15 08:00:00",
            &"9".repeat(65),
        ] {
            assert!(
                matches!(parse_expires(Some(bad), now), Err(TokenError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(rfc3339(now), "2027-01-15T08:00:00Z");
    }
}
