//! Unit tests of the API token store.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::store::{Liveness, Via};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
    (dir, store)
}

fn new(name: &str, hash: &str, expires: Option<i64>) -> NewTokenRow {
    NewTokenRow {
        name: name.into(),
        role: Role::Viewer,
        hash: hash.into(),
        expires,
        created_by: "alice".into(),
    }
}

fn live(now: i64) -> Liveness {
    Liveness {
        now,
        idle: 600,
        max: 3600,
        touch_every: Some(30),
    }
}

#[tokio::test]
async fn tokens_are_found_by_hash_until_revoked_or_expired() {
    let (_dir, store) = open();
    let t = store
        .add_token(new("ci", "h1", None), 100, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.id.len(), t.role, t.last_used), (16, Role::Viewer, None));
    assert_eq!(t.created_by.as_deref(), Some("alice"));
    // The first use writes last_used; the next within a minute does not, a later one does.
    let used = store.live_token("h1".into(), 1000).await.unwrap().unwrap();
    assert_eq!(used.last_used, Some(1000));
    store.live_token("h1".into(), 1059).await.unwrap().unwrap();
    assert_eq!(store.tokens().await.unwrap()[0].last_used, Some(1000));
    store.live_token("h1".into(), 1060).await.unwrap().unwrap();
    assert_eq!(store.tokens().await.unwrap()[0].last_used, Some(1060));
    assert!(store
        .live_token("nope".into(), 1000)
        .await
        .unwrap()
        .is_none());

    // Expiry: live before the second it names, not at it.
    store
        .add_token(new("short", "h2", Some(2000)), 100, 10)
        .await
        .unwrap()
        .unwrap();
    assert!(store.live_token("h2".into(), 1999).await.unwrap().is_some());
    assert!(store.live_token("h2".into(), 2000).await.unwrap().is_none());

    // Revoking ends the token and its sessions, not others'; the row stays listed.
    store
        .create_session("s1".into(), "c".into(), Via::Token(t.id.clone()), live(100))
        .await
        .unwrap();
    assert!(store
        .session("s1".into(), live(101))
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.revoke_token(t.id.clone()).await.unwrap(), Some(1));
    assert_eq!(store.revoke_token(t.id.clone()).await.unwrap(), Some(0));
    assert!(store
        .session("s1".into(), live(102))
        .await
        .unwrap()
        .is_none());
    assert!(store.live_token("h1".into(), 1100).await.unwrap().is_none());
    assert_eq!(
        store.revoke_token("0000000000000000".into()).await.unwrap(),
        None
    );
    let list = store.tokens().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|r| r.id == t.id && r.revoked));
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let (_dir, store) = open();
    let t = store
        .add_token(new("short", "h", Some(500)), 100, 10)
        .await
        .unwrap()
        .unwrap();
    store
        .create_session("s".into(), "c".into(), Via::Token(t.id), live(100))
        .await
        .unwrap();
    assert!(store
        .session("s".into(), live(499))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .session("s".into(), live(500))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_bootstrap_token_is_imported_rotated_and_never_listed_or_revoked() {
    let (_dir, store) = open();
    assert_eq!(store.set_bootstrap("b1".into()).await.unwrap(), (true, 0));
    // The same file at the next start changes nothing.
    assert_eq!(store.set_bootstrap("b1".into()).await.unwrap(), (false, 0));
    let b = store.live_token("b1".into(), 100).await.unwrap().unwrap();
    assert!(b.bootstrap && b.role == Role::Admin && b.id == BOOTSTRAP_ID);
    assert!(store.tokens().await.unwrap().is_empty());
    assert_eq!(store.revoke_token(BOOTSTRAP_ID.into()).await.unwrap(), None);
    let other = store
        .add_token(new("ci", "h", None), 100, 10)
        .await
        .unwrap()
        .unwrap();
    let via = |id: &str| Via::Token(id.to_owned());
    for (s, id) in [
        ("s1", BOOTSTRAP_ID),
        ("s2", BOOTSTRAP_ID),
        ("s3", &other.id),
    ] {
        store
            .create_session(s.into(), "c".into(), via(id), live(100))
            .await
            .unwrap();
    }
    // Rotating ends the old token and its sessions at once; the API token's stay.
    assert_eq!(store.set_bootstrap("b2".into()).await.unwrap(), (true, 2));
    assert!(store.live_token("b1".into(), 101).await.unwrap().is_none());
    assert!(store.live_token("b2".into(), 101).await.unwrap().is_some());
    assert!(store
        .session("s1".into(), live(101))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .session("s3".into(), live(101))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn live_tokens_are_capped() {
    let (_dir, store) = open();
    for i in 0..2 {
        let row = new("t", &format!("h{i}"), None);
        assert!(store.add_token(row, 100, 2).await.unwrap().is_some());
    }
    assert!(store
        .add_token(new("t", "h2", None), 100, 2)
        .await
        .unwrap()
        .is_none());
    // Expired and revoked ones do not count.
    let first = store.tokens().await.unwrap().remove(0);
    store.revoke_token(first.id).await.unwrap();
    assert!(store
        .add_token(new("t", "h3", Some(150)), 100, 2)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .add_token(new("t", "h4", None), 200, 2)
        .await
        .unwrap()
        .is_some());
}
