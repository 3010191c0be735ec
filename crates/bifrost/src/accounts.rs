//! Accounts: argon2id password hashes, one-time passwords, account names and the session
//! timeouts. The database side is `store/accounts.rs`; the `bifrost user` commands are
//! `accounts/admin.rs`.

pub mod admin;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
pub use mover_proto::accounts::{Role, Secret};
use mover_proto::accounts::{MAX_PASSWORD_BYTES, MAX_USER_NAME_CHARS, MIN_PASSWORD_CHARS};
use tokio::sync::Semaphore;

/// Hashes computed at once at most: each holds 19 MiB and a core (argon2id's default cost),
/// so a burst of sign-ins queues rather than starving the copies.
const HASHING_AT_ONCE: usize = 2;

/// Characters of one-time passwords: lower case and digits without the look-alikes
/// (0/o, 1/l/i), so one read aloud or copied by hand survives.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Errors of hashing.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// argon2 refused (it does not for the inputs Bifrost gives it).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task failed.
    #[error("password hashing task: {0}")]
    Task(String),
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AccountError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(b)
}

/// The argon2id PHC string of `password` (default parameters: m 19 MiB, t 2, p 1), with a
/// fresh 16-byte salt. Blocks for tens of milliseconds: async callers use [`Hasher`].
pub fn hash_now(password: &Secret) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (a malformed one matches nothing).
pub fn verify_now(password: &Secret, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified against for names that have no account, so that a
/// wrong name takes as long as a wrong password (the timing does not tell which names exist).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let filler = Secret::new(format!("{:?}", std::time::SystemTime::now()));
        hash_now(&filler).unwrap_or_default()
    })
}

/// Hashes and verifies on blocking threads, [`HASHING_AT_ONCE`] at a time.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(HASHING_AT_ONCE)),
        }
    }
}

impl Hasher {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AccountError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| AccountError::Task(e.to_string()))
    }

    /// [`hash_now`] off the async threads.
    pub async fn hash(&self, password: Secret) -> Result<String, AccountError> {
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `phc`; with no hash (no such account) it is checked against
    /// a dummy one and fails, in the same time.
    pub async fn verify(
        &self,
        password: Secret,
        phc: Option<String>,
    ) -> Result<bool, AccountError> {
        self.run(move || match phc {
            Some(phc) => verify_now(&password, &phc),
            None => {
                verify_now(&password, dummy_hash());
                false
            }
        })
        .await
    }
}

/// A new one-time password: 20 characters of [`ALPHABET`] (about 99 bits) in groups of five.
pub fn one_time_password() -> Result<Secret, AccountError> {
    let mut out = String::new();
    let mut chars = 0;
    while chars < 20 {
        for b in random_bytes::<32>()? {
            // Rejection sampling: the 31 letters take the values below 248 evenly.
            if chars == 20 || b >= 248 {
                continue;
            }
            if chars > 0 && chars % 5 == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            chars += 1;
        }
    }
    Ok(Secret::new(out))
}

/// Why `name` cannot be an account name, if it cannot: 1 to 64 letters, digits, `.`, `_`,
/// `-` or `@`, starting with a letter or digit (it shows in logs, lists and commands).
pub fn check_name(name: &str) -> Result<(), String> {
    check_label("an account name", name)
}

/// [`check_name`]'s rule for any name that shows in logs, lists and commands (accounts, API
/// tokens); `what` starts the error text, e.g. `a token name`.
pub fn check_label(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    match name.chars().next() {
        None => Err(format!("{what} cannot be empty")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            Err(format!("{what} starts with a letter or a digit"))
        }
        _ if name.chars().count() > MAX_USER_NAME_CHARS => Err(format!(
            "{what} has at most {MAX_USER_NAME_CHARS} characters"
        )),
        _ if !name.chars().all(ok_char) => Err(format!(
            "{what} has only letters, digits and the characters . _ - @"
        )),
        _ => Ok(()),
    }
}

/// Why `new` cannot replace `current`, if it cannot.
pub fn check_new_password(current: &Secret, new: &Secret) -> Result<(), String> {
    let new = new.expose();
    if new.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the new password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if new.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the new password may have at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    if new == current.expose() {
        return Err("the new password must differ from the current one".into());
    }
    Ok(())
}

/// How long console sessions last (`serve --session-idle`, `--session-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub max: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            max: Duration::from_secs(12 * 3600),
        }
    }
}

impl SessionPolicy {
    /// How stale a session's `last_seen` may be before a request writes it again: every
    /// request writing it would make each API call a database write. Half the idle time at
    /// most, so a session in use never looks idle.
    pub fn touch_every(&self) -> Duration {
        Duration::from_secs(30).min(self.idle / 2)
    }
}

/// Parses `90s`, `30m`, `12h`, `7d` or plain seconds; at least one second.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 30m or 12h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: the unit is one of s, m, h or d")),
    };
    if secs == 0 {
        return Err("a duration of at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_unknown_names_fail() {
        let hasher = Hasher::default();
        let pw = Secret::new("correct horse battery");
        let phc = hasher.hash(pw.clone()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct"));
        assert!(hasher.verify(pw.clone(), Some(phc.clone())).await.unwrap());
        let wrong = Secret::new("correct horse battery!");
        assert!(!hasher.verify(wrong, Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify(pw.clone(), None).await.unwrap());
        assert!(!hasher
            .verify(pw.clone(), Some("garbage".into()))
            .await
            .unwrap());
        // The same password hashes differently each time (a fresh salt).
        assert_ne!(hasher.hash(pw).await.unwrap(), phc);
    }

    #[test]
    fn one_time_passwords_are_long_readable_and_new_each_time() {
        let (a, b) = (one_time_password().unwrap(), one_time_password().unwrap());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 23, "{}", a.expose());
        assert!(a
            .expose()
            .split('-')
            .all(|g| g.len() == 5 && g.bytes().all(|c| ALPHABET.contains(&c))));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn names_and_new_passwords_are_checked() {
        for ok in ["alice", "bob.smith", "ops-1", "a@example.com"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "ünï", &"a".repeat(65), "x;rm"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let cur = Secret::new("abcde-fghjk-mnpqr-stuvw");
        assert!(check_new_password(&cur, &Secret::new("short")).is_err());
        assert!(check_new_password(&cur, &cur.clone()).is_err());
        assert!(check_new_password(&cur, &Secret::new("twelve chars")).is_ok());
        assert!(check_new_password(&cur, &Secret::new("x".repeat(1025))).is_err());
    }

    #[test]
    fn durations_and_the_touch_interval() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "0s", "m", "5w", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SessionPolicy::default().touch_every(),
            Duration::from_secs(30)
        );
        let short = SessionPolicy {
            idle: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(short.touch_every(), Duration::from_secs(1));
    }
}
