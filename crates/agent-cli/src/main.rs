//! `agent`: the Mover Agent command line, glue around the agent runtime.
#![forbid(unsafe_code)]

mod autoupdate;
mod banner;
mod commands;
mod service;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Commands and their options; top-level help and version are printed by hand because
/// their text is the original agent's, not clap's.
#[derive(Parser)]
#[command(
    name = "agent",
    disable_help_flag = false,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect the agent to Mover after a disconnect.
    Connect,
    /// Disconnect the agent from Mover; it stays running.
    Disconnect,
    /// Show the agent's key, connection and live Browse/Upload activity until Ctrl-C.
    Monitor,
    /// Start the agent in the foreground and show its connector key.
    Start(commands::StartArgs),
    /// Install, remove or check the agent as an always-on service.
    Service(service::ServiceArgs),
    /// Show the agent's key and whether it is online.
    Status,
    /// Stop the running agent.
    Stop,
    /// Check for a signed update now (agents started with --auto-update).
    Update,
}

const COMMANDS: &[(&str, &str)] = &[
    ("connect", "Connect the agent to Mover after a disconnect"),
    (
        "disconnect",
        "Disconnect the agent from Mover; it stays running",
    ),
    (
        "monitor",
        "Show the agent's key, connection and live Browse/Upload activity",
    ),
    (
        "service",
        "Install, remove or check the agent as an always-on service",
    ),
    ("start", "Start the agent and show its connector key"),
    ("status", "Show the agent's key and whether it is online"),
    ("stop", "Stop the running agent"),
    (
        "update",
        "Check for an update now (agents started with --auto-update)",
    ),
];

fn print_help() {
    println!("Mover Agent {}", mover_agent::VERSION);
    println!();
    println!("Usage: agent [options] [command]");
    println!();
    println!("Options:");
    println!("  -? | -h | --help  Show help information");
    println!("  -v | --version    Show version information");
    println!();
    println!("Commands:");
    for (name, about) in COMMANDS {
        println!("  {name:<12}{about}");
    }
    println!();
    println!("Use \"agent [command] --help\" for more information about a command.");
}

/// The original's steps are "run `./agent`, copy the key" and `./agent Stop`: no command (a
/// bare `agent`, or `agent.exe` double-clicked) means `start`, and command names are matched
/// regardless of case.
fn normalized(mut args: Vec<String>) -> Vec<String> {
    match args.get(1) {
        None => args.push("start".into()),
        Some(first) => {
            let lower = first.to_ascii_lowercase();
            if COMMANDS.iter().any(|(name, _)| *name == lower) {
                args[1] = lower;
            }
        }
    }
    args
}

fn main() -> ExitCode {
    let args = normalized(std::env::args().collect());
    match args.get(1).map(String::as_str) {
        Some("-?" | "-h" | "--help") => {
            print_help();
            return ExitCode::SUCCESS;
        }
        Some("-v" | "--version") => {
            println!("Mover Agent");
            println!(
                "{} ({})",
                mover_agent::VERSION,
                mover_agent::os_description()
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `start` (and the service) recover inside `run`, where a release on trial keeps its
    // handle; every other command finishes an interrupted update here.
    if !matches!(cli.command, Command::Start(_) | Command::Service(_)) {
        let _ = autoupdate::recover_at_start();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Start(args) => commands::start(args).await,
            Command::Status => commands::status().await,
            Command::Stop => commands::stop().await,
            Command::Connect => commands::connect(true).await,
            Command::Disconnect => commands::connect(false).await,
            Command::Monitor => commands::monitor().await,
            Command::Update => commands::update().await,
            Command::Service(args) => service::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalized(args.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn no_command_starts_and_commands_ignore_case() {
        assert_eq!(norm(&["agent"]), ["agent", "start"]);
        assert_eq!(norm(&["./agent", "Stop"]), ["./agent", "stop"]);
        assert_eq!(norm(&["agent", "MONITOR"]), ["agent", "monitor"]);
        assert_eq!(
            norm(&["agent", "Start", "--Share", "/x"]),
            ["agent", "start", "--Share", "/x"],
            "only the command's name"
        );
        assert_eq!(norm(&["agent", "-h"]), ["agent", "-h"]);
        assert_eq!(norm(&["agent", "Bogus"]), ["agent", "Bogus"]);
    }
}
