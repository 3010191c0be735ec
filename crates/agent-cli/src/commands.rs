//! The `agent` commands: `start` runs the runtime; the others talk to it over the control channel.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use mover_agent::control::{Client, ControlError, Reply, Request};
use mover_agent::{Activity, Agent, AgentHome, Config, Detail, Status};

/// Where Bifrost is and what it may browse: options of `agent start` and `agent service install`,
/// saved to the agent's config file.
#[derive(clap::Args, Default)]
pub struct SettingsArgs {
    /// Bifrost's https:// address (saved for later starts)
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// Trust Bifrost's certificate when issued by the CA in this PEM file
    #[arg(long, value_name = "FILE", conflicts_with = "relay_fingerprint")]
    relay_ca: Option<PathBuf>,
    /// Pin Bifrost's certificate by the SHA-256 of its DER (hex, colons allowed)
    #[arg(long, value_name = "FP")]
    relay_fingerprint: Option<String>,
    /// A folder Bifrost may browse (repeatable); without it, what this user can read
    #[arg(long = "share", value_name = "PATH")]
    shares: Vec<PathBuf>,
    /// Update this agent from its Bifrost's signed release feed (not for package installs)
    #[arg(long)]
    auto_update: bool,
}

impl SettingsArgs {
    /// Loads the config at `path`, applies the options given, checks and saves it.
    pub fn save_to(self, path: &std::path::Path) -> anyhow::Result<Config> {
        let mut config = Config::load(path)?;
        if let Some(relay) = self.relay {
            config.relay = Some(relay);
        }
        if let Some(ca) = self.relay_ca {
            config.relay_ca = Some(std::path::absolute(&ca).unwrap_or(ca));
            config.relay_fingerprint = None;
        }
        if let Some(fp) = self.relay_fingerprint {
            config.relay_fingerprint = Some(fp);
            config.relay_ca = None;
        }
        if !self.shares.is_empty() {
            config.shares = self
                .shares
                .iter()
                .map(|s| std::path::absolute(s).unwrap_or_else(|_| s.clone()))
                .collect();
        }
        if self.auto_update {
            config.auto_update = true;
        }
        config.validate()?;
        config.save(path)?;
        Ok(config)
    }
}

/// Options of `agent start`.
#[derive(clap::Args, Default)]
pub struct StartArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Make a new connector key; the old one stops working at Bifrost
    #[arg(long)]
    reset_key: bool,
}

fn home() -> anyhow::Result<AgentHome> {
    AgentHome::from_env().context("cannot find the agent's home folder")
}

pub async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    run(args, shutdown_signal()).await
}

/// Runs the agent until `shutdown` completes or it is stopped over the control channel: the
/// body of `agent start` and of the service (whose stop request is `shutdown`). With
/// auto-update on, an installed update takes over from here, or is rolled back and this
/// version serves again.
pub async fn run(
    args: StartArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let mut candidate = match crate::autoupdate::recover_at_start() {
        crate::autoupdate::AtStart::Installed => None,
        crate::autoupdate::AtStart::Candidate(trial) => Some(trial),
        crate::autoupdate::AtStart::Abandoned => {
            println!("This update was rolled back; run the installed agent instead");
            return Ok(ExitCode::FAILURE);
        }
    };
    let home = home()?;
    if Client::connect(&home.control_endpoint()).await.is_ok() {
        println!("Mover Agent is already running in {}", home.dir().display());
        return Ok(ExitCode::FAILURE);
    }
    home.create()
        .with_context(|| format!("cannot create {}", home.dir().display()))?;
    let mut config = args.settings.save_to(&home.config_file())?;
    let _log = mover_agent::logging::init(home.log_dir(), "agent")
        .with_context(|| format!("cannot write logs to {}", home.log_dir().display()))?;
    let key = mover_agent::prepare_key(&home, args.reset_key)?;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let trial = candidate.take();
        let installed =
            match serve(home.clone(), key.clone(), config, trial, shutdown.as_mut()).await? {
                Served::Stopped => return Ok(ExitCode::SUCCESS),
                Served::FailedTrial => return Ok(ExitCode::FAILURE),
                Served::AlreadyRunning => return Ok(ExitCode::FAILURE),
                Served::Updated(installed) => installed,
            };
        match crate::autoupdate::hand_over(installed, &home, shutdown.as_mut()).await {
            crate::autoupdate::HandOver::Done(code) => return Ok(code),
            crate::autoupdate::HandOver::RolledBack => {
                config = Config::load(&home.config_file())?;
            }
        }
    }
}

enum Served {
    Stopped,
    /// This process was a release on trial and did not reconnect in time: rolled back.
    FailedTrial,
    AlreadyRunning,
    Updated(crate::autoupdate::Installed),
}

/// Runs one agent until it stops or an update was installed (it is then stopped too).
async fn serve(
    home: AgentHome,
    key: mover_agent::ConnectorKey,
    config: Config,
    candidate: Option<mover_agent::update::Trial>,
    shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Served> {
    let auto_update = config.auto_update;
    let agent = Agent::start(home, key, config)?;
    let control = match mover_agent::control::serve(agent.clone()).await {
        Ok(handle) => handle,
        Err(ControlError::AlreadyRunning(home)) => {
            println!("Mover Agent is already running in {home}");
            return Ok(Served::AlreadyRunning);
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = mover_agent::live_config::watch(&agent) {
        tracing::warn!(error = %e, "cannot watch the config file; edits apply at the next start");
    }
    for line in crate::banner::start_lines(agent.key(), crate::banner::Audience::of_stdout()) {
        println!("{line}");
    }
    tracing::info!(key = %agent.key(), home = %agent.home().dir().display(), version = mover_agent::VERSION, "agent started");
    // A release on trial proves itself by reconnecting; it stops the agent if it cannot.
    let proof = candidate.map(|trial| tokio::spawn(crate::autoupdate::prove(agent.clone(), trial)));
    let updates = async {
        if auto_update {
            crate::autoupdate::check_loop(agent.clone()).await
        } else {
            std::future::pending().await
        }
    };
    let served = tokio::select! {
        _ = shutdown => {
            println!("Mover Agent Stopping");
            agent.stop().await;
            agent.stopped().await;
            Served::Stopped
        }
        _ = agent.stopped() => {
            println!("Mover Agent Stopping");
            Served::Stopped
        }
        installed = updates => {
            agent.stop().await;
            agent.stopped().await;
            Served::Updated(installed)
        }
    };
    let _ = control.await;
    tracing::info!("agent stopped");
    if let Some(mut proof) = proof {
        // A failed proof stopped the agent itself and is about to return; one still waiting
        // was overtaken by a stop, and the trial is left to the parent or the next start.
        match tokio::time::timeout(std::time::Duration::from_secs(1), &mut proof).await {
            Ok(Ok(false)) => return Ok(Served::FailedTrial),
            Ok(_) => {}
            Err(_) => proof.abort(),
        }
    }
    Ok(served)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Connects to the running agent and sends `request`, printing the original's first lines.
async fn open(request: Request, verb: Option<&str>) -> anyhow::Result<Option<Client>> {
    println!("Connecting to Mover Agent");
    let mut client = match Client::connect(&home()?.control_endpoint()).await {
        Ok(c) => c,
        // None in this user's home: the system service, for its administrators.
        Err(ControlError::NotRunning) => match system_client().await? {
            Some(c) => c,
            None => {
                println!("Mover Agent is not running");
                return Ok(None);
            }
        },
        Err(e) => return Err(e.into()),
    };
    if let Some(verb) = verb {
        println!("Sending {verb} command");
    }
    client
        .send(request)
        .await
        .context("cannot talk to the agent")?;
    Ok(Some(client))
}

/// The system service's control channel, when it runs and this user may use it.
async fn system_client() -> anyhow::Result<Option<Client>> {
    let endpoint = mover_agent::home::system_control();
    match Client::connect(&endpoint).await {
        Ok(c) => Ok(Some(c)),
        Err(ControlError::NotRunning) => Ok(None),
        Err(ControlError::Io(_, e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let who = if cfg!(windows) {
                "Administrators (from an elevated prompt)"
            } else if cfg!(target_os = "macos") {
                "root (use sudo)"
            } else {
                "root and members of the group `mover-agent`"
            };
            anyhow::bail!(
                "the Mover Agent service runs, but only {who} may control it ({endpoint})"
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn reply(client: &mut Client) -> anyhow::Result<Reply> {
    match client
        .next()
        .await
        .context("cannot read the agent's answer")?
    {
        Some(Reply::Error { message }) => anyhow::bail!("the agent refused: {message}"),
        Some(r) => Ok(r),
        None => anyhow::bail!("the agent closed the control channel"),
    }
}

fn print_status(status: &Status) {
    println!("Mover Agent Status: {}", status.word());
    println!("{}", status.detail);
}

pub async fn status() -> anyhow::Result<ExitCode> {
    let Some(mut client) = open(Request::Status, None).await? else {
        return Ok(ExitCode::FAILURE);
    };
    match reply(&mut client).await? {
        Reply::Status { key, status } => {
            println!("Mover Agent Key:");
            println!("{key}");
            print_status(&status);
            Ok(ExitCode::SUCCESS)
        }
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    }
}

pub async fn update() -> anyhow::Result<ExitCode> {
    let Some(mut client) = open(Request::Update, Some("update")).await? else {
        return Ok(ExitCode::FAILURE);
    };
    match reply(&mut client).await? {
        Reply::Update { message } => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    }
}

pub async fn stop() -> anyhow::Result<ExitCode> {
    let Some(mut client) = open(Request::Stop, Some("stop")).await? else {
        return Ok(ExitCode::FAILURE);
    };
    reply(&mut client).await?;
    println!("Mover Agent Stopping");
    // The agent closes the channel once it has stopped.
    while let Ok(Some(_)) = client.next().await {}
    println!("Mover Agent stopped");
    Ok(ExitCode::SUCCESS)
}

pub async fn connect(up: bool) -> anyhow::Result<ExitCode> {
    let (request, verb) = if up {
        (Request::Connect, "connect")
    } else {
        (Request::Disconnect, "disconnect")
    };
    let Some(mut client) = open(request, Some(verb)).await? else {
        return Ok(ExitCode::FAILURE);
    };
    match reply(&mut client).await? {
        Reply::Done { settled: true, .. } => {
            println!("Mover Agent {verb}ed.");
            Ok(ExitCode::SUCCESS)
        }
        Reply::Done {
            settled: false,
            status,
        } => {
            println!("Mover Agent is still trying to {verb}: {}", status.detail);
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    }
}

pub async fn monitor() -> anyhow::Result<ExitCode> {
    let Some(mut client) = open(Request::Monitor, None).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let Reply::Status { key, status } = reply(&mut client).await? else {
        anyhow::bail!("unexpected answer from the agent");
    };
    println!("Mover Agent Key:");
    println!("{key}");
    let mut last = None;
    show_state(&status, &mut last);
    // On a terminal, progress is a live line under the activity; piped, it is plain lines.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            next = client.next() => match next.context("cannot read from the agent")? {
                Some(Reply::Activity { activity: Activity::State(status) }) => {
                    if let Some(bar) = &bar {
                        bar.suspend(|| show_state(&status, &mut last));
                    } else {
                        show_state(&status, &mut last);
                    }
                }
                Some(Reply::Activity { activity: progress @ Activity::Progress { .. } }) => match &bar {
                    Some(bar) => {
                        bar.set_message(progress.to_string());
                        bar.tick();
                    }
                    None => println!("{progress}"),
                },
                Some(Reply::Activity { activity }) => say(activity.to_string()),
                Some(_) => {}
                None => {
                    println!("Mover Agent stopped");
                    return Ok(ExitCode::SUCCESS);
                }
            },
        }
    }
}

/// Prints a state change in the original's words, once per change.
fn show_state(status: &Status, last: &mut Option<Status>) {
    if last.as_ref() == Some(status) {
        return;
    }
    let was_online = last.as_ref().is_some_and(|s| s.online);
    if status.online {
        if !was_online {
            let host = status.relay_host.as_deref().unwrap_or("Bifrost");
            let port = status.relay_port.unwrap_or(443);
            println!("Connected to {host} on port {port}.");
        }
        match &status.detail {
            Detail::Authorized { .. } => println!("Ready to transfer!"),
            other => println!("{other}"),
        }
    } else {
        print_status(status);
    }
    *last = Some(status.clone());
}
