//! Raw command-line flags, exactly as typed. Validation and the `PODVISOR_*` environment live in
//! `config.rs`: clap's own `env` support cannot split repeatable options on commas for the
//! environment only, nor name the variable in an error, so the environment is merged there.

use std::ffi::OsString;

use clap::{ArgAction, CommandFactory, Parser};

/// Every flag as typed (bytes, so that config.rs can name the flag of a non-UTF-8 value);
/// `None`/empty means "not given on the command line".
#[derive(Debug, Default, Parser)]
#[command(
    name = "podvisor",
    version,
    about = "Wait for a pod's sidecars, run the step as a correct init, and tell the sidecars when it is done.",
    override_usage = "podvisor [OPTIONS] [--] [COMMAND [ARG]...]\n       podvisor [OPTIONS] --sh 'SHELL STRING'",
    after_help = "Every option can also be set as PODVISOR_<OPTION> (e.g. PODVISOR_WAIT_TCP, PODVISOR_TIMEOUT);\nrepeatable options take a comma-separated list there; booleans take 1/0, true/false, yes/no;\nan empty value counts as unset. A flag overrides the environment.\nDurations: 250ms, 5s, 2m, 1h30m; a bare number is seconds.\n\nExit codes: COMMAND's status (128+N when killed by signal N); 124 wait failed;\n125 podvisor's own error; 126 COMMAND not executable; 127 COMMAND not found.",
    disable_help_subcommand = true,
    // `--timeout 5 --timeout 9` means 9, as in most tools, rather than an error.
    args_override_self = true,
    // `--retries -1` is a bad value (named as such), not an unknown flag `-1`.
    allow_negative_numbers = true
)]
pub struct Cli {
    /// Wait until URL is ready: tcp://, http://, https://, unix://, file://, postgres://, redis://, mysql://, log://; options after # (https://es:9200/#status=200-299,401&insecure); repeatable.
    #[arg(long, value_name = "URL", action = ArgAction::Append)]
    pub wait: Vec<OsString>,
    /// Wait until a TCP connect to HOST:PORT succeeds ([::1]:80 for IPv6; HOST:PORT#hold=DURATION as for --wait); repeatable.
    #[arg(long, value_name = "HOST:PORT", action = ArgAction::Append)]
    pub wait_tcp: Vec<OsString>,
    /// Wait until PATH exists (inotify on the nearest existing folder, polling fallback); repeatable.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub wait_file: Vec<OsString>,
    /// Wait until a connect to the unix socket PATH (at most 107 bytes) succeeds; repeatable.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub wait_unix: Vec<OsString>,
    /// Wait until an HTTP GET of URL (http:// or https://, options after # as for --wait) answers 2xx; repeatable.
    #[arg(long, value_name = "URL", action = ArgAction::Append)]
    pub wait_http: Vec<OsString>,
    /// Wait until `/bin/sh -c STRING` exits 0 (its output shown at debug level); repeatable.
    #[arg(long, value_name = "SHELL STRING", action = ArgAction::Append)]
    pub wait_cmd: Vec<OsString>,
    /// Wait until the file PATH has N lines matching RE (PATH#regex=RE&count=N, count defaults to 1); repeatable.
    #[arg(long, value_name = "PATH#regex=RE", action = ArgAction::Append)]
    pub wait_log: Vec<OsString>,
    /// Overall deadline of the wait phase (monotonic clock); 0 = none [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<OsString>,
    /// Delay between attempts on one target [default: 100ms].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<OsString>,
    /// When larger than --interval, the delay doubles after each failed attempt up to it [default: same as --interval].
    #[arg(long, value_name = "DURATION")]
    pub max_interval: Option<OsString>,
    /// Retries after a target's first failed attempt (N+1 attempts in all); a target out of retries fails the wait at once [default: unlimited].
    #[arg(long, value_name = "N")]
    pub retries: Option<OsString>,
    /// Bound on one attempt, never beyond the overall deadline [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub attempt_timeout: Option<OsString>,
    /// On wait failure: warn, then run COMMAND anyway (with no COMMAND the wait still fails: 124).
    #[arg(long)]
    pub no_strict: bool,
    /// Run `/bin/sh -c STRING` as the command.
    #[arg(long, value_name = "STRING")]
    pub sh: Option<OsString>,
    /// Format of podvisor's own log lines on stderr: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<OsString>,
    /// Level of podvisor's own log lines: error, warn, info or debug [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<OsString>,
    /// Log errors only (same as --log-level error; --log-level wins when both are given).
    #[arg(short, long)]
    pub quiet: bool,
    /// Signal only the direct child, and leave it in podvisor's process group.
    #[arg(long)]
    pub no_group: bool,
    /// Rewrite signal FROM into TO before forwarding it (names or numbers, e.g. TERM:QUIT; TO 0 drops FROM); repeatable.
    #[arg(long, value_name = "FROM:TO", action = ArgAction::Append)]
    pub rewrite_signal: Vec<OsString>,
    /// Exit TO when COMMAND's status is FROM (0-255; a death by signal N is 128+N, so 143:0 also maps SIGTERM); repeatable.
    // Hyphen values: `--map-exit -1:0` is a bad value to name, not an unknown flag.
    #[arg(long, value_name = "FROM:TO", action = ArgAction::Append, allow_hyphen_values = true)]
    pub map_exit: Vec<OsString>,
    /// After a terminating signal is forwarded, SIGKILL the group when this runs out [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub grace_period: Option<OsString>,
    /// Write a JSON marker at PATH when the step ends (and hold PATH.lock while running).
    #[arg(long, value_name = "PATH")]
    pub marker: Option<OsString>,
    /// Stop COMMAND (and exit 0) once all these paths exist; repeatable; implies --sidecar.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub until_file: Vec<OsString>,
    /// Stop COMMAND (and exit 0) once every listed command container is finished; repeatable; implies --sidecar.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub until_marker: Vec<OsString>,
    /// Signal that stops COMMAND in the sidecar role [default: the signal that arrived; TERM when an until-condition stops it].
    #[arg(long, value_name = "SIG")]
    pub stop_signal: Option<OsString>,
    /// Sidecar role: the first TERM, INT, QUIT or HUP is the stop request (sent on as --stop-signal when set), and the stopped child's death counts as success.
    #[arg(long)]
    pub sidecar: bool,
    /// When podvisor ends (on every path), POST to URL (http:// or https://, options ca=, insecure, unix= after #; empty body); repeatable; never changes the exit code.
    #[arg(long, value_name = "URL", action = ArgAction::Append)]
    pub shutdown_post: Vec<OsString>,
    /// Bound on all the shutdown calls together (a refused connect is retried within it) [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<OsString>,
    /// Wait for a mesh or proxy sidecar and POST its shutdown call at the end: istio, envoy, linkerd, cloudsql or dapr, as NAME[:READY_PORT[:SHUTDOWN_PORT]]; repeatable.
    #[arg(long, value_name = "NAME", action = ArgAction::Append)]
    pub proxy: Vec<OsString>,
    /// Copy COMMAND's stdout and stderr (and podvisor's own lines) to PATH, bounded by --log-size; the output itself still goes to stdout and stderr.
    #[arg(long, value_name = "PATH")]
    pub log_to: Option<OsString>,
    /// Bound of the --log-to copy, PATH and PATH.1 together (bytes, or K/KiB, M/MiB, G/GiB: powers of 1024) [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    pub log_size: Option<OsString>,
    /// On failure, print the last lines of this sidecar log (a file, or a folder: every *.log in it) to stderr; repeatable.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub show_logs: Vec<OsString>,
    /// How many lines of each --show-logs log to print [default: 50].
    #[arg(long, value_name = "N")]
    pub show_lines: Option<OsString>,
    /// When to print the --show-logs logs: failure or always [default: failure].
    #[arg(long, value_name = "WHEN")]
    pub show_logs_when: Option<OsString>,
    /// On failure, write a one-line reason to PATH (without it: to /dev/termination-log when that exists and is writable).
    #[arg(long, value_name = "PATH")]
    pub termination_log: Option<OsString>,
    /// Copy this executable into DIR (atomically, mode 0755) and exit.
    #[arg(long, value_name = "DIR")]
    pub install_to: Option<OsString>,
    /// The command to run, found on PATH and executed directly.
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// The long names of every option, for `PODVISOR_*` lookups and typo suggestions.
pub fn option_names() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .filter(|l| l != "help" && l != "version")
        .collect()
}

/// The environment variable that stands for a long option: `wait-tcp` -> `PODVISOR_WAIT_TCP`.
pub fn env_name(long: &str) -> String {
    format!("PODVISOR_{}", long.to_ascii_uppercase().replace('-', "_"))
}
