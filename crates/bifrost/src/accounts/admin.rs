//! The `bifrost user` commands' work: accounts added, listed, disabled and reset on the data
//! folder's database, while Bifrost runs or not. Only the folder's owner may: SQLite files
//! that root made (the write-ahead log) would lock the service's own user out.

use std::path::{Path, PathBuf};

use super::{check_name, hash_now, one_time_password, AccountError, Role, Secret};
use crate::store::{Store, StoreError, UserRow};

/// Why a `bifrost user` command failed; the text says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The data folder is not there.
    #[error("there is no data folder at {}; pass the --data that `bifrost serve` uses", .0.display())]
    NoData(PathBuf),
    /// Run by another Unix user than the data folder's owner.
    #[error("{} belongs to the user {owner}: run this command as that user, e.g.\n  sudo -u {owner} bifrost {args}", .data.display())]
    NotOwner {
        /// The data folder.
        data: PathBuf,
        /// Its owner's name (or `#UID`).
        owner: String,
        /// The command's arguments, to show the command to run.
        args: String,
    },
    /// The name cannot be an account's.
    #[error("{0}")]
    BadName(String),
    /// An account has the name already.
    #[error("there is already an account named {0} (names are unique regardless of case)")]
    Taken(String),
    /// No account has the name.
    #[error("there is no account named {0}; `bifrost user list` shows them")]
    NoSuchUser(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// Refuses unless this process runs as the owner of `data`. `args` is the command line
/// (without the program), for the command the error suggests.
pub fn check_owner(data: &Path, args: &str) -> Result<(), AdminError> {
    let meta = std::fs::metadata(data).map_err(|_| AdminError::NoData(data.to_owned()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(AdminError::NotOwner {
                data: data.to_owned(),
                owner: user_name(meta.uid()),
                args: args.to_owned(),
            });
        }
    }
    let _ = (meta, args);
    Ok(())
}

/// The name of Unix user `uid` from `/etc/passwd`, or `#UID` (which `sudo -u` takes too).
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| name_in_passwd(&passwd, uid))
        .unwrap_or_else(|| format!("#{uid}"))
}

fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// An account just added, with its one-time password.
pub struct Added {
    /// The account.
    pub user: UserRow,
    /// Its one-time password (to show once).
    pub password: Secret,
}

/// Adds account `name` with `role` and a one-time password it must change at first sign-in.
pub async fn add(store: &Store, name: &str, role: Role) -> Result<Added, AdminError> {
    check_name(name).map_err(AdminError::BadName)?;
    let password = one_time_password()?;
    let hash = hash_now(&password)?;
    match store.add_user(name.to_owned(), role, hash).await? {
        Some(user) => {
            audited(store, "user.add", name, Some(format!("role {role}"))).await?;
            Ok(Added { user, password })
        }
        None => Err(AdminError::Taken(name.to_owned())),
    }
}

/// Gives account `name` a new one-time password and ends its sessions; returns the password
/// and how many sessions ended.
pub async fn reset(store: &Store, name: &str) -> Result<(Secret, usize), AdminError> {
    let password = one_time_password()?;
    let hash = hash_now(&password)?;
    match store.reset_password(name.to_owned(), hash).await? {
        Some(ended) => {
            audited(store, "user.reset", name, None).await?;
            Ok((password, ended))
        }
        None => Err(AdminError::NoSuchUser(name.to_owned())),
    }
}

/// Disables (ending its sessions) or enables account `name`; returns the sessions ended.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool) -> Result<usize, AdminError> {
    let ended = store
        .set_disabled(name.to_owned(), disabled)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(name.to_owned()))?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audited(store, action, name, None).await?;
    Ok(ended)
}

/// Appends the audit row of a change made with the `bifrost` command on the server: the actor
/// is `cli:` and the Unix user who ran it, the address `local`.
pub async fn audited(
    store: &Store,
    action: &str,
    target: &str,
    detail: Option<String>,
) -> Result<(), StoreError> {
    #[cfg(unix)]
    let who = user_name(rustix::process::geteuid().as_raw());
    #[cfg(not(unix))]
    let who = std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into());
    store
        .audit(crate::store::AuditEvent {
            actor: format!("cli:{who}"),
            role: None,
            addr: "local".into(),
            action: action.into(),
            target: Some(target.into()),
            detail,
        })
        .await
}

/// One line of `bifrost user list`.
pub fn list_line(u: &UserRow) -> String {
    let state = match (u.disabled, u.must_change) {
        (true, _) => "disabled",
        (false, true) => "must change password",
        (false, false) => "active",
    };
    format!(
        "{:<24} {:<9} {:<21} {}",
        u.name,
        u.role.as_str(),
        state,
        u.created
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Liveness, Via, BOOTSTRAP_ID};

    #[test]
    fn the_owner_is_named_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbifrost:x:998:998::/var/lib/bifrost:/usr/sbin/nologin\n";
        assert_eq!(name_in_passwd(passwd, 998).as_deref(), Some("bifrost"));
        assert_eq!(name_in_passwd(passwd, 5), None);
        let e = AdminError::NotOwner {
            data: "/var/lib/bifrost".into(),
            owner: "bifrost".into(),
            args: "user list --data /var/lib/bifrost".into(),
        };
        assert!(e
            .to_string()
            .contains("sudo -u bifrost bifrost user list --data /var/lib/bifrost"));
    }

    #[tokio::test]
    async fn add_reset_and_disable_end_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        let added = add(&store, "alice", Role::Operator).await.unwrap();
        assert!(added.user.must_change && !added.user.disabled);
        assert!(matches!(
            add(&store, "ALICE", Role::Viewer).await,
            Err(AdminError::Taken(_))
        ));
        let live = |now| Liveness {
            now,
            idle: 60,
            max: 3600,
            touch_every: Some(30),
        };
        let session = |h: &str| store.session(h.to_owned(), live(100));
        store
            .create_session(
                "h1".into(),
                "c".into(),
                Via::Password(added.user.id.clone()),
                live(100),
            )
            .await
            .unwrap();
        assert_eq!(
            session("h1").await.unwrap().unwrap().user.unwrap().name,
            "alice"
        );
        let (_, ended) = reset(&store, "alice").await.unwrap();
        assert_eq!(ended, 1);
        assert!(session("h1").await.unwrap().is_none());
        store
            .create_session(
                "h2".into(),
                "c".into(),
                Via::Password(added.user.id.clone()),
                live(100),
            )
            .await
            .unwrap();
        assert_eq!(set_disabled(&store, "alice", true).await.unwrap(), 1);
        assert!(session("h2").await.unwrap().is_none());
        assert!(matches!(
            set_disabled(&store, "bob", true).await,
            Err(AdminError::NoSuchUser(_))
        ));
        // The admin token's sessions idle out like any: unused 61 s of an allowed 60.
        store.set_bootstrap("b".into()).await.unwrap();
        let admin_token = Via::Token(BOOTSTRAP_ID.into());
        store
            .create_session("t".into(), "c".into(), admin_token, live(100))
            .await
            .unwrap();
        assert!(store
            .session("t".into(), live(150))
            .await
            .unwrap()
            .is_some());
        assert!(
            store
                .session("t".into(), live(181))
                .await
                .unwrap()
                .is_some(),
            "touched at 150"
        );
        assert!(store
            .session("t".into(), live(242))
            .await
            .unwrap()
            .is_none());
    }
}
