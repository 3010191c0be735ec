//! The `bifrost user`, `bifrost token` and `bifrost settings` commands: accounts, tokens and
//! settings changed on the data folder's database by its owner, while Bifrost runs or not.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::default_data_dir;

#[derive(clap::Args)]
pub(crate) struct TokenArgs {
    /// Data folder of the Bifrost whose tokens these are
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Replace the admin token in DATA/admin.token; the old one and its sessions end at once
    Rotate,
    /// List the API tokens (never their secrets; the admin token is not one)
    List,
}

#[derive(clap::Args)]
pub(crate) struct SettingsArgs {
    /// Data folder of the Bifrost whose settings these are
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: SettingsCommand,
}

#[derive(Subcommand)]
pub(crate) enum SettingsCommand {
    /// Show, set or clear the folders that folder destinations must be inside (none: any)
    AllowedRoots {
        /// Absolute folders on this machine; they replace those set
        #[arg(value_name = "PATH", conflicts_with = "clear")]
        paths: Vec<String>,
        /// Remove them all, so jobs may write into any folder again
        #[arg(long)]
        clear: bool,
    },
}

#[derive(clap::Args)]
pub(crate) struct UserArgs {
    /// Data folder of the Bifrost whose accounts these are
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account; prints a one-time password to change at the first sign-in
    Add {
        /// Account name: letters, digits and . _ - @
        name: String,
        /// admin, operator, viewer or metrics
        #[arg(long, value_parser = parse_role)]
        role: bifrost::accounts::Role,
    },
    /// List the accounts
    List,
    /// Disable an account and end its sessions at once
    Disable {
        /// Account name
        name: String,
    },
    /// Enable a disabled account again
    Enable {
        /// Account name
        name: String,
    },
    /// Give an account a new one-time password and end its sessions at once
    Reset {
        /// Account name
        name: String,
    },
}

pub(crate) fn parse_role(s: &str) -> Result<bifrost::accounts::Role, String> {
    bifrost::accounts::Role::parse(s)
        .ok_or_else(|| "the role is one of admin, operator, viewer or metrics".to_owned())
}

/// The data folder and its database, once the caller is known to be the folder's owner.
pub(crate) fn owned_store(
    data: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, bifrost::store::Store)> {
    let data = match data {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let line: Vec<String> = std::env::args().skip(1).collect();
    bifrost::accounts::admin::check_owner(&data, &line.join(" "))?;
    let store = bifrost::store::Store::open(&data.join("bifrost.db"))
        .context("cannot open the database")?;
    Ok((data, store))
}

/// `bifrost token ...`. The admin token it makes is printed here and written to its file, and
/// nowhere else: not logged, never on a command line.
pub(crate) async fn tokens(args: TokenArgs) -> anyhow::Result<()> {
    use bifrost::tokens::admin;
    let (data, store) = owned_store(args.data)?;
    match args.command {
        TokenCommand::Rotate => {
            let rotated = admin::rotate(&store, &data).await?;
            println!("New admin token: {}", rotated.token.expose());
            println!(
                "It is shown only now and kept in {} (mode 0600). The old token no longer works; {} session(s) made with it ended.",
                rotated.file.display(),
                rotated.ended
            );
        }
        TokenCommand::List => {
            println!("{}", admin::LIST_HEADER);
            let now = bifrost::store::unix_now();
            for t in store.tokens().await? {
                println!("{}", admin::list_line(&t, now));
            }
        }
    }
    Ok(())
}

/// `bifrost user ...`. The passwords it makes are printed here and nowhere else: not logged,
/// never on a command line.
pub(crate) async fn users(args: UserArgs) -> anyhow::Result<()> {
    use bifrost::accounts::admin;
    let (_, store) = owned_store(args.data)?;
    match args.command {
        UserCommand::Add { name, role } => {
            let added = admin::add(&store, &name, role).await?;
            println!("Added {} ({}).", added.user.name, added.user.role);
            println!("One-time password: {}", added.password.expose());
            println!(
                "It is shown only now; {} chooses a new password at the first sign-in.",
                added.user.name
            );
        }
        UserCommand::List => {
            println!("{:<24} {:<9} {:<21} ADDED", "NAME", "ROLE", "STATE");
            for u in store.users().await? {
                println!("{}", admin::list_line(&u));
            }
        }
        UserCommand::Disable { name } => {
            let ended = admin::set_disabled(&store, &name, true).await?;
            println!("Disabled {name}; {ended} session(s) ended.");
        }
        UserCommand::Enable { name } => {
            admin::set_disabled(&store, &name, false).await?;
            println!("Enabled {name}.");
        }
        UserCommand::Reset { name } => {
            let (password, ended) = admin::reset(&store, &name).await?;
            println!("Reset {name}; {ended} session(s) ended.");
            println!("One-time password: {}", password.expose());
            println!("It is shown only now; {name} chooses a new password at the next sign-in.");
        }
    }
    Ok(())
}

/// `bifrost settings ...`, on the data folder's database: a running Bifrost reads the allowed
/// roots at each check, so a change applies to the next job at once.
pub(crate) async fn settings(args: SettingsArgs) -> anyhow::Result<()> {
    let (_, store) = owned_store(args.data)?;
    let SettingsCommand::AllowedRoots { paths, clear } = args.command;
    let roots = if clear || !paths.is_empty() {
        let roots = bifrost::allowed_roots::set(&store, paths).await?;
        let detail = match roots.is_empty() {
            true => "allowed roots: none (any folder)".to_owned(),
            false => format!("allowed roots: {}", roots.join(", ")),
        };
        bifrost::accounts::admin::audited(&store, "settings.edit", "allowed_roots", Some(detail))
            .await?;
        roots
    } else {
        store.allowed_roots().await?
    };
    if roots.is_empty() {
        println!("No allowed destination roots are set: jobs may write into any folder this Bifrost's user can.");
        return Ok(());
    }
    println!("Allowed destination roots (a folder destination must be inside one):");
    for root in roots {
        // A typo would otherwise show only when every job is refused.
        let note = if std::path::Path::new(&root).exists() {
            ""
        } else {
            " (does not exist yet)"
        };
        println!("  {root}{note}");
    }
    Ok(())
}
