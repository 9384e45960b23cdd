use std::process::ExitCode;

use podvisor::{logging, Config, Outcome};

fn main() -> ExitCode {
    // Before anything else: a signal in podvisor's first milliseconds (while the configuration
    // is parsed) must be queued for the step, not kill podvisor by its default action. An error
    // is reported once logging is set up.
    let blocked = podvisor::run::signals::block_early();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // Even this one line follows --log-format, so that json consumers can parse it.
            logging::init(
                podvisor::config::requested_log_format(),
                tracing::Level::ERROR,
            );
            tracing::error!("{e}");
            return ExitCode::from(podvisor::after::exit::OWN_ERROR);
        }
    };
    logging::init(config.log_format, config.log_level);
    let outcome = match blocked {
        // Past the configuration, every way out makes the shutdown calls (the after-phase).
        Err(e) => podvisor::failed_early(&config, format!("cannot block signals: {e}")),
        Ok(()) => podvisor::run(config),
    };
    match &outcome {
        Outcome::Error(reason) | Outcome::SpawnFailed { reason, .. } => {
            tracing::error!("{reason}")
        }
        _ => {}
    }
    ExitCode::from(outcome.code())
}
