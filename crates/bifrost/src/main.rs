//! `bifrost`: the relay, API and transfer engine, as a command.
#![forbid(unsafe_code)]

mod manage;

use manage::{settings, tokens, users, SettingsArgs, TokenArgs, UserArgs};

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bifrost",
    version,
    about = "Relay, console and transfer engine for Mover agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve agents, the API and the console on one HTTPS port.
    Serve(ServeArgs),
    /// Host signed agent releases for agents to update from (served under /updates/).
    #[command(subcommand)]
    Releases(ReleasesCommand),
    /// Console accounts: add, list, disable, enable, reset (run as the data folder's owner).
    User(UserArgs),
    /// The bootstrap admin token and API tokens: rotate, list (run as the data folder's owner).
    Token(TokenArgs),
    /// Bifrost-wide settings: allowed destination roots (run as the data folder's owner).
    Settings(SettingsArgs),
}

#[derive(Subcommand)]
enum ReleasesCommand {
    /// Copy signed archives into this Bifrost's releases and update its feed
    Add {
        /// Data folder of the Bifrost that hosts them
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Agents refuse releases older than this version
        #[arg(long, value_name = "VERSION")]
        minimum: Option<String>,
        /// Archives named PRODUCT-VERSION-TARGET.tar.gz or .zip, signed with zipsign
        #[arg(required = true, value_name = "ARCHIVE")]
        archives: Vec<PathBuf>,
    },
    /// Write DIR/feed.json for the archives in DIR (to host them on any web server)
    Feed {
        /// The folder holding the archives
        dir: PathBuf,
        /// Agents refuse releases older than this version
        #[arg(long, value_name = "VERSION")]
        minimum: Option<String>,
    },
}

fn releases(command: ReleasesCommand) -> anyhow::Result<()> {
    let (dir, feed) = match command {
        ReleasesCommand::Add {
            data,
            minimum,
            archives,
        } => {
            let data = match data {
                Some(d) => d,
                None => default_data_dir()?,
            };
            let dir = bifrost::releases::dir(&data);
            let feed = bifrost::releases::add(&dir, &archives, minimum.as_deref())?;
            (dir, feed)
        }
        ReleasesCommand::Feed { dir, minimum } => {
            let feed = bifrost::releases::write_feed(&dir, minimum.as_deref())?;
            (dir, feed)
        }
    };
    println!("Wrote {}", dir.join(bifrost::releases::FEED).display());
    for release in &feed.releases {
        for asset in &release.assets {
            println!("  {} {}", release.version, asset.name);
        }
    }
    if let Some(min) = &feed.minimum_version {
        println!("  minimum version {min}");
    }
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Data folder: database, certificate, admin token
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// PEM certificate chain to serve instead of the self-signed one
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Extra host names for the self-signed certificate (repeatable)
    #[arg(long = "public-name", value_name = "NAME")]
    public_names: Vec<String>,
    /// On SIGTERM or Ctrl-C, seconds the files being copied get to finish before Bifrost
    /// stops (the rest resume at the next start; a second signal stops at once)
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    drain_timeout: u64,
    /// A console session unused this long ends (e.g. 90s, 30m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = bifrost::accounts::parse_duration)]
    session_idle: std::time::Duration,
    /// A console session ends this long after sign-in, however busy
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = bifrost::accounts::parse_duration)]
    session_max: std::time::Duration,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BIFROST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Serve(args) => serve(args).await,
                    Command::Releases(c) => releases(c),
                    Command::User(u) => users(u).await,
                    Command::Token(t) => tokens(t).await,
                    Command::Settings(a) => settings(a).await,
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("com", "Mover", "Bifrost")
        .map(|d| d.data_dir().to_path_buf())
        .context("cannot find a data folder; pass --data DIR")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = match args.data {
        Some(d) => d,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data folder {}", data.display()))?;
    let identity = match bifrost::tls::given(args.tls_cert, args.tls_key)? {
        Some((cert, key)) => bifrost::tls::Identity::load(&cert, &key)?,
        None => {
            let mut names = vec!["localhost".to_owned(), args.listen.ip().to_string()];
            names.extend(args.public_names);
            names.dedup();
            bifrost::tls::Identity::self_signed(&data, &names)?
        }
    };
    // Before anything is opened: the connection caps are sized from this limit.
    #[cfg(unix)]
    if let Some(n) = bifrost::gate::raise_nofile() {
        tracing::debug!(open_files = n, "open-file limit");
    }
    let fingerprint = identity.fingerprint();
    let tls = identity.server_config()?;
    let (token, new_token) = bifrost::admin_token(&data)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let sessions = bifrost::accounts::SessionPolicy {
        idle: args.session_idle,
        max: args.session_max,
    };
    let app = bifrost::open(&data, token.clone(), sessions).await?;
    println!("Bifrost listening on https://{addr}");
    println!("TLS certificate SHA-256 fingerprint: {fingerprint}");
    if new_token {
        println!("{}", token_line(&token, &data.join("admin.token")));
    }
    tracing::info!(%addr, data = %data.display(), "Bifrost started");
    // The listener keeps serving while the engine drains: agents the copies in flight need may
    // reconnect, and the API answers (new jobs are queued for the next start).
    let grace = std::time::Duration::from_secs(args.drain_timeout);
    let drained = {
        let app = app.clone();
        async move {
            shutdown().await;
            bifrost::engine::drain::drain(&app, grace, shutdown()).await;
        }
    };
    bifrost::serve(app, listener, tls, drained).await;
    tracing::info!("Bifrost stopped");
    Ok(())
}

/// The first start's token line. In full only on a terminal: under a service manager stdout
/// goes to a journal that others may read, so it says where the token is and shows only its
/// first characters (enough to tell tokens apart). Both start `Admin token: `, which scripts
/// wait for before they read `DATA/admin.token`.
fn token_line(token: &str, file: &std::path::Path) -> String {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return format!("Admin token: {token}");
    }
    let start: String = token.chars().take(4).collect();
    format!(
        "Admin token: {start}… (shown in full only on a terminal; read it from {})",
        file.display()
    )
}

/// The data folder and its database, for `bifrost user` and `bifrost token`, which refuse to
/// run as another Unix user than the folder's owner (root's database files would lock the
/// service out).
async fn shutdown() {
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
