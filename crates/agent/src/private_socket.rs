//! A Unix listening socket that is never reachable with a wider mode than its final one (the
//! control channel's: 0600 in the home, 0660 for the system service's group).

use std::os::unix::fs::PermissionsExt;

/// Binds a listening socket that appears at `path` already with `mode`: it is bound in a
/// fresh folder only this user can enter (0700), given its mode there, then renamed into
/// place. A bind straight at `path` would create it with the umask's mode (often 0755)
/// until a chmod, a window in which another user could connect. (Setting the umask
/// instead would change it for every thread of the process.)
pub fn bind_with_mode(
    path: &std::path::Path,
    mode: u32,
) -> std::io::Result<tokio::net::UnixListener> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    // A short name: socket paths are limited to about 100 bytes.
    let private = tempfile::Builder::new()
        .prefix(".s")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)?;
    let staged = private.path().join("s");
    let listener = tokio::net::UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
    // The bound socket keeps its inode across the rename; clients reach it at `path`.
    std::fs::rename(&staged, path)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::UnixStream;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_socket_has_its_final_mode_the_moment_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        // Watch the path from another thread while it is bound many times: any moment
        // the socket is visible with another mode is a failure.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        for _ in 0..200 {
            let listener = bind_with_mode(&path, 0o600).unwrap();
            assert_eq!(mode(&path), 0o600);
            let client = UnixStream::connect(&path).await.unwrap();
            let (_server, _) = listener.accept().await.unwrap();
            drop(client);
            std::fs::remove_file(&path).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        assert!(seen.iter().all(|m| *m == 0o600), "modes seen: {seen:?}");
        // Nothing is left of the private folder.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn the_service_socket_is_for_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let _listener = bind_with_mode(&path, 0o660).unwrap();
        assert_eq!(mode(&path), 0o660);
    }
}
