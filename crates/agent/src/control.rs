//! The local control channel: a Unix socket (mode 0600) or a per-user named pipe on Windows,
//! carrying newline-delimited JSON between the `agent` CLI and a running agent.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::runtime::Agent;
use crate::status::{Activity, Status};

/// How long `connect`/`disconnect` wait for the tunnel before answering.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request from the CLI.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Report the key and status.
    Status,
    /// Stop the agent.
    Stop,
    /// Bring the tunnel up.
    Connect,
    /// Take the tunnel down.
    Disconnect,
    /// Report the status, then stream activity until the client leaves.
    Monitor,
    /// Check for an update now (agents started with auto-update).
    Update,
}

/// A reply line from the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// Key and status.
    Status {
        /// The full key: the CLI user asked to see it.
        key: String,
        /// Current status.
        status: Status,
    },
    /// The agent is stopping.
    Stopping,
    /// `connect`/`disconnect` finished (`settled`) or gave up waiting.
    Done {
        /// Whether the tunnel reached the wanted state in time.
        settled: bool,
        /// Status at that moment.
        status: Status,
    },
    /// What an update check did.
    Update {
        /// In words.
        message: String,
    },
    /// One activity event (monitor).
    Activity {
        /// The event.
        activity: Activity,
    },
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// Serves one client connection.
pub async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    agent: Agent,
    stream: S,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let Some(line) = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .ok()
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            return send(
                &mut write,
                &Reply::Error {
                    message: format!("malformed request: {e}"),
                },
            )
            .await
        }
    };
    let status_reply = || Reply::Status {
        key: agent.key().expose().to_owned(),
        status: agent.status(),
    };
    match request {
        Request::Status => send(&mut write, &status_reply()).await,
        Request::Stop => {
            send(&mut write, &Reply::Stopping).await?;
            agent.stop().await;
            agent.stopped().await;
            Ok(())
        }
        Request::Connect | Request::Disconnect => {
            let want_online = request == Request::Connect;
            let mut status = agent.watch_status();
            if want_online {
                agent.connect().await;
            } else {
                agent.disconnect().await;
            }
            let settled =
                tokio::time::timeout(SETTLE_TIMEOUT, status.wait_for(|s| s.online == want_online))
                    .await
                    .is_ok_and(|r| r.is_ok());
            send(
                &mut write,
                &Reply::Done {
                    settled,
                    status: agent.status(),
                },
            )
            .await
        }
        Request::Update => {
            let reply = match agent.check_for_update().await {
                Some(message) => Reply::Update { message },
                None => Reply::Error {
                    message: "this agent does not update itself (start it with --auto-update)"
                        .into(),
                },
            };
            send(&mut write, &reply).await
        }
        Request::Monitor => {
            let mut feed = agent.subscribe();
            send(&mut write, &status_reply()).await?;
            loop {
                match feed.recv().await {
                    Ok(activity) => send(&mut write, &Reply::Activity { activity }).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "monitor client too slow");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(write: &mut W, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}

/// Why the control channel could not be reached or opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No agent listens there.
    #[error("Mover Agent is not running")]
    NotRunning,
    /// An agent already runs in this home.
    #[error("Mover Agent is already running in {0}")]
    AlreadyRunning(String),
    /// Another I/O failure.
    #[error("control channel {0}: {1}")]
    Io(String, std::io::Error),
}

/// A client connection to a running agent.
pub struct Client {
    lines: tokio::io::Lines<BufReader<Box<dyn AsyncRead + Send + Unpin>>>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
}

impl Client {
    /// Connects to the agent at `endpoint`.
    pub async fn connect(endpoint: &str) -> Result<Self, ControlError> {
        let (read, write) = os::connect(endpoint).await?;
        Ok(Self {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends a request.
    pub async fn send(&mut self, request: Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.write.write_all(&line).await?;
        self.write.flush().await
    }

    /// The next reply, or `None` when the agent closed the channel.
    pub async fn next(&mut self) -> std::io::Result<Option<Reply>> {
        match self.lines.next_line().await? {
            Some(line) => serde_json::from_str(&line)
                .map(Some)
                .map_err(std::io::Error::other),
            None => Ok(None),
        }
    }
}

/// Serves the control channel for `agent` until it stops.
pub async fn serve(agent: Agent) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    os::serve(agent).await
}

#[cfg(unix)]
mod os {
    use super::*;
    use tokio::net::UnixStream;

    pub async fn connect(
        endpoint: &str,
    ) -> Result<
        (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        ),
        ControlError,
    > {
        match UnixStream::connect(endpoint).await {
            Ok(s) => {
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(ControlError::NotRunning)
            }
            Err(e) => Err(ControlError::Io(endpoint.to_owned(), e)),
        }
    }

    pub async fn serve(agent: Agent) -> Result<tokio::task::JoinHandle<()>, ControlError> {
        let endpoint = agent.home().control_endpoint();
        let io = |e| ControlError::Io(endpoint.clone(), e);
        match UnixStream::connect(&endpoint).await {
            Ok(_) => {
                return Err(ControlError::AlreadyRunning(
                    agent.home().dir().display().to_string(),
                ))
            }
            // A socket left by an agent that died: nobody answers, so it can go.
            Err(_) => {
                let _ = std::fs::remove_file(&endpoint);
            }
        }
        // In the home only this user may use it; a socket placed elsewhere (the system
        // service's, in /run/mover-agent) is for the service's group, its administrators.
        let in_home = std::path::Path::new(&endpoint).starts_with(agent.home().dir());
        let mode = if in_home { 0o600 } else { 0o660 };
        let listener = crate::private_socket::bind_with_mode(std::path::Path::new(&endpoint), mode)
            .map_err(io)?;
        let path = endpoint.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let agent = agent.clone();
                            tokio::spawn(async move {
                                if let Err(e) = serve_client(agent, stream).await {
                                    tracing::debug!(error = %e, "control client");
                                }
                            });
                        }
                        Err(e) => tracing::warn!(error = %e, "control accept"),
                    },
                    _ = agent.stopped() => break,
                }
            }
            let _ = std::fs::remove_file(&path);
        }))
    }
}

#[cfg(windows)]
mod os {
    use super::*;
    use tokio::net::windows::named_pipe::{ClientOptions, ServerOptions};

    // The pipe rejects remote clients; its default security gives write access only to
    // the creating user, SYSTEM and Administrators.
    pub async fn connect(
        endpoint: &str,
    ) -> Result<
        (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        ),
        ControlError,
    > {
        match ClientOptions::new().open(endpoint) {
            Ok(pipe) => {
                let (r, w) = tokio::io::split(pipe);
                Ok((Box::new(r), Box::new(w)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ControlError::NotRunning),
            Err(e) => Err(ControlError::Io(endpoint.to_owned(), e)),
        }
    }

    pub async fn serve(agent: Agent) -> Result<tokio::task::JoinHandle<()>, ControlError> {
        let endpoint = agent.home().control_endpoint();
        let create = |first: bool| {
            ServerOptions::new()
                .first_pipe_instance(first)
                .reject_remote_clients(true)
                .create(&endpoint)
        };
        let mut server = create(true).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                ControlError::AlreadyRunning(agent.home().dir().display().to_string())
            }
            _ => ControlError::Io(endpoint.clone(), e),
        })?;
        let endpoint = endpoint.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    connected = server.connect() => {
                        if let Err(e) = connected {
                            tracing::warn!(error = %e, "control accept");
                            continue;
                        }
                        let next = match ServerOptions::new().reject_remote_clients(true).create(&endpoint) {
                            Ok(next) => next,
                            Err(e) => { tracing::warn!(error = %e, "control pipe"); break; }
                        };
                        let stream = std::mem::replace(&mut server, next);
                        let agent = agent.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_client(agent, stream).await {
                                tracing::debug!(error = %e, "control client");
                            }
                        });
                    }
                    _ = agent.stopped() => break,
                }
            }
        }))
    }
}
