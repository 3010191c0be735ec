//! `agent service` on Windows: the "MoverAgent" service (LocalSystem, started at boot) and its
//! entry point `agent service run`, which the service manager starts and stops.
//!
//! The control pipe is the agent's usual named pipe for the service's home. Its default security
//! lets only its creator (LocalSystem), SYSTEM and Administrators write to it, so only they can
//! send requests; restricting it explicitly (SDDL `D:P(A;;GA;;;BA)(A;;GA;;;SY)`) needs tokio's
//! `create_with_security_attributes_raw`, an `unsafe` raw-pointer API, and stays a TODO: this
//! crate forbids unsafe code. (`define_windows_service!` below expands to an entry point whose
//! one `unsafe` block, reading the service manager's raw arguments, is windows-service's code.)

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::drives::{resolve_root, service_drive_warnings};
use super::Kind;

/// The service's name.
pub const NAME: &str = "MoverAgent";
/// The name the Services console shows.
pub const DISPLAY_NAME: &str = "Mover Agent";
/// How long a stop may take: reads in flight get up to 30 s to finish.
const STOP_WAIT: Duration = Duration::from_secs(40);

const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_CANNOT_ACCEPT_CTRL: i32 = 1061;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;

fn os_error(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

/// An error from the service manager, with what to do when it is a matter of rights.
fn scm(what: &str) -> impl FnOnce(windows_service::Error) -> anyhow::Error + '_ {
    move |e| {
        if os_error(&e) == Some(ERROR_ACCESS_DENIED) {
            anyhow::anyhow!(
                "{what}: access denied (run it from an elevated, Administrator, prompt)"
            )
        } else {
            anyhow::Error::new(e).context(what.to_owned())
        }
    }
}

fn user_kind_refused() -> anyhow::Error {
    anyhow::anyhow!(
        "on Windows a per-user agent is the Mover Agent desktop app: it starts at login, runs as you and sees your mapped drives; `agent service install` installs the machine's service"
    )
}

fn home() -> PathBuf {
    mover_agent::home::windows_service_home()
}

/// Creates (or updates) the service, and starts it.
pub fn install(
    kind: Kind,
    no_start: bool,
    settings: crate::commands::SettingsArgs,
) -> anyhow::Result<ExitCode> {
    if kind == Kind::User {
        return Err(user_kind_refused());
    }
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    // First, so that without the right to create services nothing else is touched.
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm("cannot open the service manager"))?;
    let home = home();
    // Restricted before anything is written into it.
    std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    restrict(&home)?;
    let (config, _) = super::save_settings(settings, &home)?;

    let info = ServiceInfo {
        name: NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: vec!["service".into(), "run".into()],
        dependencies: Vec::new(),
        // LocalSystem: it reads local folders whatever their owner, and network shares as the
        // machine's account (DOMAIN\MACHINE$), which the shares must grant read access.
        account_name: None,
        account_password: None,
    };
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS;
    let service = match manager.create_service(&info, access) {
        Ok(service) => service,
        // A reinstall (a new binary path, say) updates the existing service.
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_EXISTS) => {
            let service = manager
                .open_service(NAME, access)
                .map_err(scm("cannot open the existing service"))?;
            service
                .change_config(&info)
                .map_err(scm("cannot update the existing service"))?;
            service
        }
        Err(e) => return Err(scm("cannot create the service")(e)),
    };
    service
        .set_description("Lets Mover read this machine's file shares through Bifrost (read only)")
        .map_err(scm("cannot describe the service"))?;
    // Restarted 5 s after it fails, as the Linux and macOS services are; not after a stop.
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(
                (0..3)
                    .map(|_| ServiceAction {
                        action_type: ServiceActionType::Restart,
                        delay: Duration::from_secs(5),
                    })
                    .collect(),
            ),
        })
        .map_err(scm("cannot set the service's restart on failure"))?;
    service
        .set_failure_actions_on_non_crash_failures(true)
        .map_err(scm("cannot set the service's restart on failure"))?;
    println!("Created the service {NAME} ({DISPLAY_NAME}): started at boot, as LocalSystem");
    for warning in service_drive_warnings(&config.shares, true, resolve_root) {
        println!("warning: {warning}");
    }
    let running = service
        .query_status()
        .is_ok_and(|s| s.current_state != ServiceState::Stopped);
    if !no_start && !running {
        service
            .start(&[] as &[&OsStr])
            .map_err(scm("cannot start the service"))?;
    }
    println!(
        "Mover Agent service installed{}; its key is in {} once it has started (Administrators may read it)",
        if no_start || running { "" } else { " and started" },
        home.join("connector.key").display()
    );
    if running {
        println!("It was already running: restart it to use the new settings (`sc stop {NAME}` then `sc start {NAME}`).");
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives the home to SYSTEM and Administrators only: files under ProgramData are readable by
/// every user by default, and this folder holds the connector key.
fn restrict(home: &Path) -> anyhow::Result<()> {
    let out = Command::new("icacls")
        .arg(home)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:(OI)(CI)F",
            "*S-1-5-32-544:(OI)(CI)F",
        ])
        .output()
        .context("cannot run icacls")?;
    if !out.status.success() {
        bail!(
            "cannot restrict {} to SYSTEM and Administrators: {}",
            home.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

/// Stops the service (waiting up to 40 s) and deletes it; its home is kept.
pub fn uninstall(kind: Kind) -> anyhow::Result<ExitCode> {
    if kind == Kind::User {
        return Err(user_kind_refused());
    }
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("cannot open the service manager"))?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(NAME, access) {
        Ok(service) => service,
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            println!("Mover Agent service is not installed (no service {NAME})");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(scm("cannot open the service")(e)),
    };
    let state = |s: &windows_service::service::Service| {
        s.query_status()
            .map(|s| s.current_state)
            .map_err(scm("cannot query the service"))
    };
    if state(&service)? != ServiceState::Stopped {
        match service.stop() {
            Ok(_) => {}
            // Already stopping or stopped.
            Err(e)
                if matches!(
                    os_error(&e),
                    Some(ERROR_SERVICE_NOT_ACTIVE | ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
                ) => {}
            Err(e) => return Err(scm("cannot stop the service")(e)),
        }
        println!("Stopping the service (reads in flight may take up to 30 s)");
        let since = Instant::now();
        while state(&service)? != ServiceState::Stopped {
            if since.elapsed() > STOP_WAIT {
                println!(
                    "The service is still stopping after {} s; Windows removes it once it stops",
                    STOP_WAIT.as_secs()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete().map_err(scm("cannot delete the service"))?;
    println!(
        "Removed the service {NAME}; the agent's home (key, config, logs) is kept in {}",
        home().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports whether the service is installed, starts at boot and runs, and warns about shares
/// on drives it cannot see.
pub fn status(kind: Kind) -> anyhow::Result<ExitCode> {
    if kind == Kind::User {
        return Err(user_kind_refused());
    }
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("cannot open the service manager"))?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
    let service = match manager.open_service(NAME, access) {
        Ok(service) => service,
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            println!("Mover Agent service is not installed");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(scm("cannot open the service")(e)),
    };
    println!("Mover Agent service installed: {NAME} ({DISPLAY_NAME})");
    let config = service
        .query_config()
        .map_err(scm("cannot query the service"))?;
    let enabled = match config.start_type {
        ServiceStartType::AutoStart => "yes (at boot)",
        ServiceStartType::OnDemand => "no (started by hand)",
        ServiceStartType::Disabled => "no (disabled)",
        _ => "by the system",
    };
    println!("enabled: {enabled}");
    let state = service
        .query_status()
        .map_err(scm("cannot query the service"))?
        .current_state;
    println!("running: {}", state_word(state));
    let home = home();
    match mover_agent::Config::load(&home.join("config.toml")) {
        Ok(config) => {
            for warning in service_drive_warnings(&config.shares, true, resolve_root) {
                println!("warning: {warning}");
            }
        }
        Err(e) => println!("warning: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn state_word(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Running => "yes",
        ServiceState::Stopped => "no",
        ServiceState::StartPending => "starting",
        ServiceState::StopPending => "stopping",
        ServiceState::Paused | ServiceState::PausePending | ServiceState::ContinuePending => {
            "paused"
        }
    }
}

windows_service::define_windows_service!(ffi_service_main, service_main);

/// `agent service run`: hands this process to the service manager, which calls `service_main`.
pub fn run() -> anyhow::Result<ExitCode> {
    match windows_service::service_dispatcher::start(NAME, ffi_service_main) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if os_error(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => bail!(
            "agent service run is started by the Windows service manager; to run the agent here, use `agent start`"
        ),
        Err(e) => Err(e).context("cannot hand this process to the service manager"),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_service() {
        // A service has no console: what fails before the agent's own log is open goes to a
        // file beside it, where an admin looking at the logs finds it.
        let logs = home().join("logs");
        let _ = std::fs::create_dir_all(&logs);
        let line = format!("{} error: {e:#}\r\n", mover_agent::VERSION);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("service-errors.log"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
}

fn report(
    handle: service_control_handler::ServiceStatusHandle,
    state: ServiceState,
    exit_code: ServiceExitCode,
) -> anyhow::Result<()> {
    let (controls_accepted, wait_hint) = match state {
        ServiceState::Running => (
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            Duration::ZERO,
        ),
        ServiceState::StopPending => (ServiceControlAccept::empty(), STOP_WAIT),
        _ => (ServiceControlAccept::empty(), Duration::ZERO),
    };
    handle
        .set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted,
            exit_code,
            checkpoint: 0,
            wait_hint,
            process_id: None,
        })
        .context("cannot report the service's state")
}

/// The service's life: runs the agent as `agent start` would, with the service's home, until
/// the service manager says Stop or Shutdown (or the agent is stopped over its control pipe).
fn run_service() -> anyhow::Result<()> {
    // Services get no user profile: the home is set here, before anything reads it.
    std::env::set_var(mover_agent::home::HOME_ENV, home());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(NAME, handler)
        .context("cannot register with the service manager")?;
    report(handle, ServiceState::Running, ServiceExitCode::NO_ERROR)?;
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            runtime.block_on(crate::commands::run(Default::default(), async move {
                if stopped.wait_for(|stop| *stop).await.is_err() {
                    // The handler is gone only when the service is: nothing will ask to stop.
                    std::future::pending::<()>().await;
                }
                let _ = report(handle, ServiceState::StopPending, ServiceExitCode::NO_ERROR);
            }))
        });
    // A failure (not a stop) exits with an error, so the service manager restarts it.
    let exit_code = match &result {
        Ok(code) if *code == ExitCode::SUCCESS => ServiceExitCode::NO_ERROR,
        _ => ServiceExitCode::ServiceSpecific(1),
    };
    report(handle, ServiceState::Stopped, exit_code)?;
    result.map(|_| ())
}
