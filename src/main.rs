use std::process::ExitCode;

use podvisor::{logging, Config, Outcome};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("podvisor: error: {e}");
            return ExitCode::from(podvisor::exit::OWN_ERROR);
        }
    };
    logging::init(config.log_format, config.log_level);
    let outcome = podvisor::run(config);
    match &outcome {
        Outcome::Error(reason) | Outcome::SpawnFailed { reason, .. } => {
            tracing::error!("{reason}")
        }
        _ => {}
    }
    ExitCode::from(outcome.code())
}
