use std::process::ExitCode;

use podvisor::{logging, Config};

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
                false,
            );
            tracing::error!("{e}");
            podvisor::after::termination::write_to(
                podvisor::config::requested_termination_log().as_deref(),
                &format!("podvisor error: {e}"),
            );
            return ExitCode::from(podvisor::after::exit::OWN_ERROR);
        }
    };
    logging::init(config.log_format, config.log_level, config.log_to.is_some());
    let outcome = match blocked {
        // Past the configuration, every way out goes through the after-phase.
        Err(e) => podvisor::fail(&config, format!("cannot block signals: {e}")),
        // Errors are logged by run, before the log tails and the termination message.
        Ok(()) => podvisor::run(config),
    };
    ExitCode::from(outcome.code())
}
