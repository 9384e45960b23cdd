use std::process::ExitCode;

use podvisor::{logging, Config, Outcome};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // Even this one line follows --log-format, so that json consumers can parse it.
            logging::init(
                podvisor::config::requested_log_format(),
                tracing::Level::ERROR,
            );
            tracing::error!("{e}");
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
