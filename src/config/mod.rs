//! The validated configuration: flags merged with `PODVISOR_*` variables, every value parsed.
//!
//! A flag overrides its variable; an empty variable counts as unset; repeatable options take a
//! comma-separated list in the environment. Every error names the flag or variable and the value.

pub mod cli;
pub mod duration;
pub mod proxy;
pub mod size;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::after::shutdown;
use crate::run::signals;
use crate::wait::policy::Policy;
use crate::wait::target::{self, Target};
use cli::Cli;

/// Format of podvisor's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `podvisor: ...` lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// When `--show-logs` prints the sidecars' logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhen {
    /// When the step failed (wait, start, non-zero exit, signal, podvisor's own error).
    Failure,
    /// On every way out.
    Always,
}

/// The default bound of the `--log-to` copy.
pub const DEFAULT_LOG_SIZE: u64 = 1 << 20;
/// The smallest `--log-size`: each of the two files holds half, and a line should fit.
pub const MIN_LOG_SIZE: u64 = 1 << 10;
/// The default of `--show-lines`.
pub const DEFAULT_SHOW_LINES: usize = 50;

/// Everything podvisor needs to run, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dependencies to wait for, all at once.
    pub waits: Vec<Target>,
    /// Deadline, interval, backoff and retries of the wait phase.
    pub policy: Policy,
    /// Fail (124) rather than warn when the wait phase fails.
    pub strict: bool,
    /// The program and its arguments; empty when there is nothing to run.
    pub command: Vec<OsString>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Most verbose level shown.
    pub log_level: tracing::Level,
    /// Run the child in its own process group and signal the whole group.
    pub group: bool,
    /// Signal rewrites applied before forwarding, as (from, to).
    pub rewrites: Vec<(i32, i32)>,
    /// `--map-exit FROM:TO`: exit TO when COMMAND's would-be exit code is FROM; first match wins.
    pub map_exit: Vec<(u8, u8)>,
    /// Time between a terminating signal and SIGKILL.
    pub grace_period: Duration,
    /// Where to write the step's marker.
    pub marker: Option<PathBuf>,
    /// Paths that must all exist before the sidecar stops.
    pub until_files: Vec<PathBuf>,
    /// Command containers' markers that must all be finished before the sidecar stops.
    pub until_markers: Vec<PathBuf>,
    /// `--stop-signal` when set: what stops the child in the sidecar role. Unset, a stop request
    /// passes on the signal that arrived, and the until-condition stops with SIGTERM.
    pub stop_signal: Option<i32>,
    /// Sidecar role (also implied by any until-condition).
    pub sidecar: bool,
    /// Copy the executable here and exit.
    pub install_to: Option<PathBuf>,
    /// URLs to POST to when podvisor ends (`--shutdown-post` and the `--proxy` presets).
    pub shutdown_posts: Vec<target::Http>,
    /// Bound on all the shutdown calls together.
    pub shutdown_timeout: Duration,
    /// Where the copy of COMMAND's output (and podvisor's own lines) goes.
    pub log_to: Option<PathBuf>,
    /// Bound of that copy, both files together, in bytes.
    pub log_size: u64,
    /// Sidecar logs (files or folders of `*.log`) to print when the step fails.
    pub show_logs: Vec<PathBuf>,
    /// Lines printed of each.
    pub show_lines: usize,
    /// When they are printed.
    pub show_logs_when: ShowWhen,
    /// Where the one-line reason of a failure goes (else /dev/termination-log if writable).
    pub termination_log: Option<PathBuf>,
    /// Warnings found while reading the environment, logged once logging is up.
    pub warnings: Vec<String>,
}

/// A configuration error: one line naming the flag or variable and the bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads option values from the flags first, then the environment.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<OsString>,
    /// Whether the environment has any `PODVISOR_*` variable: most runs have none, and then no
    /// option's variable name is built to be looked up (start-up, bench row 1).
    any: bool,
}

/// A raw value and where it came from, for error messages.
struct Raw {
    value: OsString,
    origin: String,
}

impl Raw {
    fn flag(long: &str, value: &OsStr) -> Self {
        Self {
            value: value.to_owned(),
            origin: format!("--{long}"),
        }
    }

    fn bad(&self, why: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!(
            "invalid value '{}' for {}: {why}",
            crate::logging::show_bytes(&self.value),
            self.origin
        ))
    }

    /// A bad URL target: the value is shown with its password as `***`, and a message that
    /// already names the target (an unknown option) is not given it twice.
    fn bad_target(&self, why: String) -> ConfigError {
        let shown = target::redact(&crate::logging::show_bytes(&self.value));
        // Only the whole value counts as named: a blank one (a vertical tab) or one the message
        // trims ('.\n' in 'log://.') must be shown all the same.
        if !shown.trim().is_empty() && why.contains(shown.as_str()) {
            ConfigError(format!("invalid value for {}: {why}", self.origin))
        } else {
            ConfigError(format!(
                "invalid value '{shown}' for {}: {why}",
                self.origin
            ))
        }
    }

    /// The value as text: only paths and the command may be arbitrary bytes.
    fn text(&self) -> Result<&str, ConfigError> {
        self.value
            .to_str()
            .ok_or_else(|| self.bad("not valid UTF-8"))
    }

    /// A keyword or number, without the blanks that env files and YAML leave around it.
    fn word(&self) -> Result<&str, ConfigError> {
        self.text().map(str::trim)
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        target::parse_path(&self.value).map_err(|e| self.bad(e))
    }
}

impl Sources<'_> {
    fn env_value(&self, long: &str) -> Option<Raw> {
        if !self.any {
            return None;
        }
        let name = cli::env_name(long);
        let value = (self.env)(&name)?;
        // Empty (or blank) counts as unset: `PODVISOR_TIMEOUT=` in a pod spec clears the option.
        if value.as_bytes().trim_ascii().is_empty() {
            return None;
        }
        Some(Raw {
            value,
            origin: name,
        })
    }

    fn one(&self, long: &str, flag: &Option<OsString>) -> Option<Raw> {
        match flag {
            Some(value) => Some(Raw::flag(long, value)),
            None => self.env_value(long),
        }
    }

    /// Repeated flags, or else the variable's comma-separated list (items trimmed, empty ones
    /// dropped, so `" a:1 , b:2 ,"` is two items).
    fn many(&self, long: &str, flags: &[OsString]) -> Vec<Raw> {
        if !flags.is_empty() {
            return flags.iter().map(|v| Raw::flag(long, v)).collect();
        }
        let Some(raw) = self.env_value(long) else {
            return Vec::new();
        };
        if long == "wait" || long == "shutdown-post" {
            // A target's own options may hold commas (`#status=200-299,401`), a URL's query
            // too: PODVISOR_WAIT and PODVISOR_SHUTDOWN_POST split only before the next
            // `SCHEME://`.
            return match raw.value.to_str() {
                Some(text) => target::split_list(text)
                    .into_iter()
                    .map(|item| Raw {
                        value: item.into(),
                        origin: raw.origin.clone(),
                    })
                    .collect(),
                None => vec![raw],
            };
        }
        raw.value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|item| !item.is_empty())
            .map(|item| Raw {
                value: OsStr::from_bytes(item).to_owned(),
                origin: raw.origin.clone(),
            })
            .collect()
    }

    fn flag(&self, long: &str, given: bool) -> Result<bool, ConfigError> {
        if given {
            return Ok(true);
        }
        match self.env_value(long) {
            None => Ok(false),
            Some(raw) => parse_bool(&raw),
        }
    }

    fn duration(
        &self,
        long: &str,
        flag: &Option<OsString>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.one(long, flag) {
            None => Ok(default),
            Some(raw) => duration::parse(raw.text()?).map_err(|e| raw.bad(e)),
        }
    }

    /// A duration that must not be zero when given (a zero interval would spin).
    fn positive_duration(
        &self,
        long: &str,
        flag: &Option<OsString>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(long, flag, default)?;
        match self.one(long, flag) {
            Some(raw) if d.is_zero() => Err(raw.bad("must be greater than 0")),
            _ => Ok(d),
        }
    }

    fn paths(&self, long: &str, flags: &[OsString]) -> Result<Vec<PathBuf>, ConfigError> {
        self.many(long, flags).iter().map(Raw::path).collect()
    }

    fn path(&self, long: &str, flag: &Option<OsString>) -> Result<Option<PathBuf>, ConfigError> {
        self.one(long, flag).map(|raw| raw.path()).transpose()
    }

    fn signal(&self, long: &str, flag: &Option<OsString>) -> Result<Option<i32>, ConfigError> {
        self.one(long, flag)
            .map(|raw| signals::parse(raw.word()?).map_err(|e| raw.bad(e)))
            .transpose()
    }
}

fn parse_bool(raw: &Raw) -> Result<bool, ConfigError> {
    match raw.word()?.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(raw.bad("expected 1/0, true/false or yes/no")),
    }
}

fn parse_level(raw: &Raw) -> Result<tracing::Level, ConfigError> {
    match raw.word()?.to_ascii_lowercase().as_str() {
        "error" => Ok(tracing::Level::ERROR),
        "warn" | "warning" => Ok(tracing::Level::WARN),
        "info" => Ok(tracing::Level::INFO),
        "debug" => Ok(tracing::Level::DEBUG),
        _ => Err(raw.bad("expected error, warn, info or debug")),
    }
}

fn parse_format(raw: &Raw) -> Result<LogFormat, ConfigError> {
    match raw.word()?.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(raw.bad("expected text or json")),
    }
}

impl Config {
    /// Parses the process's own arguments and environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cli = Cli::try_parse_from_os_args()?;
        // Only PODVISOR_* variables matter: copied once, and looked up in that short list rather
        // than by a scan of the whole environment per option (start-up, bench row 1).
        let ours = podvisor_variables();
        let lookup = |name: &str| {
            ours.iter()
                .find(|(k, _)| k.as_bytes() == name.as_bytes())
                .map(|(_, v)| v.clone())
        };
        Self::build(&cli, &lookup, ours.iter().cloned())
    }

    /// Merges parsed flags with an environment (a lookup and the full list, for typo warnings).
    pub fn build(
        cli: &Cli,
        env: &dyn Fn(&str) -> Option<OsString>,
        all_env: impl Iterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let ours: Vec<String> = all_env
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .filter(|name| name.starts_with("PODVISOR_"))
            .collect();
        let src = Sources {
            env,
            any: !ours.is_empty(),
        };
        let mut warnings = unknown_variables(ours);

        let mut waits = Vec::new();
        for raw in src.many("wait", &cli.wait) {
            let text = raw
                .value
                .to_str()
                .ok_or_else(|| raw.bad_target("not valid UTF-8".into()))?;
            waits.push(target::parse(text).map_err(|e| raw.bad_target(e))?);
        }
        for raw in src.many("wait-tcp", &cli.wait_tcp) {
            waits.push(target::parse_host_port(raw.text()?).map_err(|e| raw.bad(e))?);
        }
        for raw in src.many("wait-file", &cli.wait_file) {
            waits.push(Target::File(raw.path()?));
        }
        for raw in src.many("wait-unix", &cli.wait_unix) {
            let path = raw.path()?;
            target::check_socket_path(&path).map_err(|e| raw.bad(e))?;
            waits.push(Target::Unix(path));
        }
        for raw in src.many("wait-http", &cli.wait_http) {
            waits.push(target::parse_http(raw.text()?).map_err(|e| raw.bad_target(e))?);
        }
        for raw in src.many("wait-cmd", &cli.wait_cmd) {
            waits.push(Target::Cmd(raw.text()?.to_owned()));
        }
        for raw in src.many("wait-log", &cli.wait_log) {
            // The shorthand of `--wait log://PATH#...`, parsed the same way.
            let text = raw.text()?;
            let url = match text.strip_prefix("log://") {
                Some(_) => text.to_owned(),
                None => format!("log://{text}"),
            };
            waits.push(target::parse(&url).map_err(|e| raw.bad_target(e))?);
        }

        let interval =
            src.positive_duration("interval", &cli.interval, Duration::from_millis(100))?;
        let max_interval = src.duration("max-interval", &cli.max_interval, interval)?;
        let timeout = src.duration("timeout", &cli.timeout, Duration::from_secs(60))?;
        let attempt_timeout = src.positive_duration(
            "attempt-timeout",
            &cli.attempt_timeout,
            Duration::from_secs(5),
        )?;
        // A hold as long as the attempt could never end ready.
        for w in &waits {
            if let Target::Tcp(t) = w {
                if t.hold.is_some_and(|h| h >= attempt_timeout) {
                    return Err(ConfigError(format!(
                        "invalid value for --wait: the hold of {w} must be shorter than --attempt-timeout ({})",
                        duration::show(attempt_timeout)
                    )));
                }
            }
        }
        let retries = match src.one("retries", &cli.retries) {
            None => None,
            Some(raw) => Some(
                raw.word()?
                    .parse::<u32>()
                    .map_err(|_| raw.bad("expected a whole number of retries (0 or more)"))?,
            ),
        };

        let command = match (&cli.sh, src.env_value("sh")) {
            (Some(_), _) if !cli.command.is_empty() => {
                return Err(ConfigError(format!(
                    "--sh cannot be combined with a COMMAND ({})",
                    crate::logging::show_bytes(&cli.command[0])
                )))
            }
            (Some(sh), _) => shell(sh),
            (None, Some(raw)) if !cli.command.is_empty() => {
                // The command line overrides the environment, a COMMAND included.
                warnings.push(format!("{} is ignored: a COMMAND is given", raw.origin));
                cli.command.clone()
            }
            (None, Some(raw)) => shell(&raw.value),
            (None, None) => cli.command.clone(),
        };

        let log_format = match src.one("log-format", &cli.log_format) {
            None => LogFormat::Text,
            Some(raw) => parse_format(&raw)?,
        };
        // Flags before variables: --log-level, then -q, then PODVISOR_LOG_LEVEL, PODVISOR_QUIET.
        let log_level = match &cli.log_level {
            Some(v) => parse_level(&Raw::flag("log-level", v))?,
            None if cli.quiet => tracing::Level::ERROR,
            None => match src.env_value("log-level") {
                Some(raw) => parse_level(&raw)?,
                None if src.flag("quiet", false)? => tracing::Level::ERROR,
                None => tracing::Level::INFO,
            },
        };

        let mut rewrites = Vec::new();
        for raw in src.many("rewrite-signal", &cli.rewrite_signal) {
            let (from, to) = raw
                .word()?
                .split_once(':')
                .ok_or_else(|| raw.bad("expected FROM:TO, e.g. TERM:QUIT"))?;
            let from = signals::parse(from).map_err(|e| raw.bad(format!("{from}: {e}")))?;
            // TO 0 drops FROM, as dumb-init's `-r SIG:0`.
            let to = match to.trim() {
                "0" => 0,
                to => signals::parse(to).map_err(|e| raw.bad(format!("{to}: {e}")))?,
            };
            rewrites.push((from, to));
        }

        let mut map_exit = Vec::new();
        for raw in src.many("map-exit", &cli.map_exit) {
            let code = |text: &str| text.trim().parse::<u8>().ok();
            let pair = raw
                .word()?
                .split_once(':')
                .and_then(|(from, to)| Some((code(from)?, code(to)?)));
            map_exit.push(pair.ok_or_else(|| {
                raw.bad("expected FROM:TO, two exit codes from 0 to 255 (e.g. 143:0)")
            })?);
        }

        let mut shutdown_posts = Vec::new();
        for raw in src.many("shutdown-post", &cli.shutdown_post) {
            shutdown_posts.push(shutdown::parse_url(raw.text()?).map_err(|e| raw.bad(e))?);
        }
        // After the explicit targets and calls, each added once: `--proxy istio` twice, or
        // beside the same --shutdown-post, is still one wait and one call.
        for raw in src.many("proxy", &cli.proxy) {
            // `--proxy "$MESH"` with MESH empty means none, as an empty PODVISOR_PROXY does.
            if raw.word()?.is_empty() {
                continue;
            }
            let preset = proxy::parse(raw.text()?).map_err(|e| raw.bad(e))?;
            let ready = target::parse(&preset.ready).map_err(|e| raw.bad(e))?;
            if !waits.contains(&ready) {
                waits.push(ready);
            }
            let call = shutdown::parse_url(&preset.shutdown).map_err(|e| raw.bad(e))?;
            if !shutdown_posts.contains(&call) {
                shutdown_posts.push(call);
            }
        }

        let until_files = src.paths("until-file", &cli.until_file)?;
        let until_markers = src.paths("until-marker", &cli.until_marker)?;
        let sidecar = src.flag("sidecar", cli.sidecar)?
            || !until_files.is_empty()
            || !until_markers.is_empty();

        let log_size = match src.one("log-size", &cli.log_size) {
            None => DEFAULT_LOG_SIZE,
            Some(raw) => {
                let n = size::parse(raw.text()?).map_err(|e| raw.bad(e))?;
                if n < MIN_LOG_SIZE {
                    return Err(raw.bad(format!("must be at least {}", size::show(MIN_LOG_SIZE))));
                }
                n
            }
        };
        let show_lines = match src.one("show-lines", &cli.show_lines) {
            None => DEFAULT_SHOW_LINES,
            Some(raw) => raw
                .word()?
                .parse::<usize>()
                .map_err(|_| raw.bad("expected a whole number of lines (0 or more)"))?,
        };
        let show_logs_when = match src.one("show-logs-when", &cli.show_logs_when) {
            None => ShowWhen::Failure,
            Some(raw) => match raw.word()?.to_ascii_lowercase().as_str() {
                "failure" => ShowWhen::Failure,
                "always" => ShowWhen::Always,
                _ => return Err(raw.bad("expected failure or always")),
            },
        };

        Ok(Config {
            waits,
            policy: Policy {
                timeout: (!timeout.is_zero()).then_some(timeout),
                interval,
                max_interval: max_interval.max(interval),
                retries,
                attempt_timeout,
            },
            strict: !src.flag("no-strict", cli.no_strict)?,
            command,
            log_format,
            log_level,
            group: !src.flag("no-group", cli.no_group)?,
            rewrites,
            map_exit,
            grace_period: src.duration(
                "grace-period",
                &cli.grace_period,
                Duration::from_secs(10),
            )?,
            marker: src.path("marker", &cli.marker)?,
            until_files,
            until_markers,
            stop_signal: src.signal("stop-signal", &cli.stop_signal)?,
            sidecar,
            install_to: src.path("install-to", &cli.install_to)?,
            shutdown_posts,
            shutdown_timeout: src.positive_duration(
                "shutdown-timeout",
                &cli.shutdown_timeout,
                shutdown::DEFAULT_TIMEOUT,
            )?,
            log_to: src.path("log-to", &cli.log_to)?,
            log_size,
            show_logs: src.paths("show-logs", &cli.show_logs)?,
            show_lines,
            show_logs_when,
            termination_log: src.path("termination-log", &cli.termination_log)?,
            warnings,
        })
    }
}

/// `--sh STRING` is the command `/bin/sh -c STRING`.
fn shell(script: &OsStr) -> Vec<OsString> {
    vec!["/bin/sh".into(), "-c".into(), script.to_owned()]
}

/// The log format asked for, read leniently: for reporting a configuration error itself.
pub fn requested_log_format() -> LogFormat {
    let flag = Cli::command()
        .ignore_errors(true)
        .try_get_matches()
        .ok()
        .and_then(|m| m.get_one::<OsString>("log_format").cloned());
    let value = flag.or_else(|| std::env::var_os(cli::env_name("log-format")));
    match value.as_deref().and_then(OsStr::to_str) {
        Some(v) if v.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// The termination log asked for, read leniently: for reporting a configuration error itself.
pub fn requested_termination_log() -> Option<PathBuf> {
    let flag = Cli::command()
        .ignore_errors(true)
        .try_get_matches()
        .ok()
        .and_then(|m| m.get_one::<OsString>("termination_log").cloned());
    flag.or_else(|| std::env::var_os(cli::env_name("termination-log")))
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
        .map(PathBuf::from)
}

impl Cli {
    fn try_parse_from_os_args() -> Result<Cli, ConfigError> {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        if let Some(cli) = Cli::without_options(&args) {
            return Ok(cli);
        }
        Cli::try_parse_from(std::iter::once(OsString::from("podvisor")).chain(args)).map_err(|e| {
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    // Help and version are not errors: print them and leave with 0.
                    let _ = e.print();
                    std::process::exit(0)
                }
                _ => ConfigError(one_line(&e.render().to_string())),
            }
        })
    }
}

impl Cli {
    /// Arguments that hold no option — `-- COMMAND...`, `COMMAND...` (everything after it is
    /// COMMAND's), or none — as clap parses them, without building clap's parser. That is how
    /// podvisor runs as an image's ENTRYPOINT, and building the parser was a third of its
    /// start-up (bench row 1). Anything else goes to clap.
    fn without_options(args: &[OsString]) -> Option<Cli> {
        let command = match args.first() {
            None => args,
            Some(first) if first == "--" => &args[1..],
            Some(first) if !first.as_bytes().starts_with(b"-") => args,
            Some(_) => return None,
        };
        Some(Cli {
            command: command.to_vec(),
            ..Cli::default()
        })
    }
}

/// clap's messages span several lines (usage, tips); the contract is one line: the first
/// paragraph (it names the flag and the value, and holds a value's own newlines, which the log
/// line escapes), plus clap's tip when it has one ("a similar argument exists").
fn one_line(text: &str) -> String {
    let first = text.split("\n\n").next().unwrap_or_default().trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = if first.is_empty() {
        "invalid arguments"
    } else {
        first
    };
    let tips: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        // "to pass '--x' as a value, use '-- --x'" is noise: podvisor has no such values.
        .filter(|tip| !tip.starts_with("to pass"))
        .collect();
    if tips.is_empty() {
        first.to_owned()
    } else {
        format!("{first} ({})", tips.join("; "))
    }
}

/// The `PODVISOR_*` variables of the process's environment, without copying the others.
fn podvisor_variables() -> Vec<(OsString, OsString)> {
    let mut ours = Vec::new();
    crate::environ::for_each(|entry| {
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            if name.starts_with(b"PODVISOR_") {
                ours.push((
                    OsStr::from_bytes(name).to_owned(),
                    OsStr::from_bytes(value).to_owned(),
                ));
            }
        }
    });
    ours
}

/// Warnings for the `PODVISOR_*` variables (`ours`) that match no option, with the closest real name.
fn unknown_variables(ours: Vec<String>) -> Vec<String> {
    if ours.is_empty() {
        // The usual case: no need to build clap's command again for the option names.
        return Vec::new();
    }
    let known: Vec<String> = cli::option_names()
        .iter()
        .map(|l| cli::env_name(l))
        .collect();
    let mut warnings = Vec::new();
    for name in ours {
        if known.contains(&name) {
            continue;
        }
        // Always name the closest option: a typo must be easy to spot, even a bad one.
        let closest = known
            .iter()
            .min_by_key(|k| edit_distance(k, &name))
            .map_or(String::new(), |k| format!("; did you mean {k}?"));
        warnings.push(format!("unknown variable {name} is ignored{closest}"));
    }
    warnings.sort();
    warnings
}

/// Edit distance with adjacent transpositions (TPC -> TCP is one edit); names are short, so
/// the full table is fine.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("podvisor").chain(args.iter().copied()))
            .map_err(|e| ConfigError(e.to_string()))?;
        let owned: Vec<(OsString, OsString)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let lookup = |name: &str| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Config::build(&cli, &lookup, owned.clone().into_iter())
    }

    /// The shortcut past clap gives what clap gives, for every argument list it takes.
    #[test]
    fn arguments_without_options_parse_as_clap_parses_them() {
        let words = ["--", "-", "-q", "--wait", "x", "", "--x=1", "-- ", "cmd"];
        // Every list of up to four words: 9^4 + 9^3 + 9^2 + 9 + 1 lists.
        let mut lists: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..4 {
            let longer: Vec<Vec<&str>> = lists
                .iter()
                .filter(|l| l.len() == lists.last().map_or(0, Vec::len))
                .flat_map(|l| words.iter().map(move |w| [l.clone(), vec![*w]].concat()))
                .collect();
            lists.extend(longer);
        }
        let mut taken = 0;
        for list in &lists {
            let args: Vec<OsString> = list.iter().map(OsString::from).collect();
            let Some(fast) = Cli::without_options(&args) else {
                continue;
            };
            taken += 1;
            let clap = Cli::try_parse_from(std::iter::once("podvisor").chain(list.iter().copied()))
                .unwrap_or_else(|e| panic!("{list:?}: clap refused what the shortcut took: {e}"));
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{list:?}");
        }
        assert!(taken > 1000, "only {taken} lists took the shortcut");
    }

    #[test]
    fn defaults() {
        let c = build(&[], &[]).unwrap();
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.policy.interval, Duration::from_millis(100));
        assert_eq!(c.policy.max_interval, Duration::from_millis(100));
        assert_eq!(c.policy.retries, None);
        assert_eq!(c.policy.attempt_timeout, Duration::from_secs(5));
        assert_eq!(c.grace_period, Duration::from_secs(10));
        assert_eq!(c.stop_signal, None);
        assert!(c.strict && c.group && !c.sidecar);
    }

    #[test]
    fn env_lists_and_precedence() {
        let c = build(
            &["--timeout", "5s"],
            &[
                ("PODVISOR_WAIT_TCP", "a:1, b:2"),
                ("PODVISOR_TIMEOUT", "9s"),
                ("PODVISOR_NO_STRICT", "yes"),
                ("PODVISOR_RETRIES", ""),
            ],
        )
        .unwrap();
        assert_eq!(c.waits.len(), 2);
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(5)));
        assert!(!c.strict);
        assert_eq!(c.policy.retries, None);
        let c = build(&["--wait-tcp", "c:3"], &[("PODVISOR_WAIT_TCP", "a:1,b:2")]).unwrap();
        assert_eq!(c.waits.len(), 1);
    }

    #[test]
    fn errors_name_the_source_and_value() {
        let e = build(&["--timeout", "soon"], &[]).unwrap_err().0;
        assert!(e.contains("--timeout") && e.contains("soon"), "{e}");
        let e = build(&[], &[("PODVISOR_TIMEOUT", "soon")]).unwrap_err().0;
        assert!(e.contains("PODVISOR_TIMEOUT") && e.contains("soon"), "{e}");
        let e = build(&[], &[("PODVISOR_NO_STRICT", "maybe")])
            .unwrap_err()
            .0;
        assert!(
            e.contains("PODVISOR_NO_STRICT") && e.contains("maybe"),
            "{e}"
        );
        assert!(build(&["--wait-http", "ftp://x/"], &[]).is_err());
        assert!(build(&["--retries", "-1"], &[]).is_err());
        assert!(build(&["--rewrite-signal", "TERM"], &[]).is_err());
        assert!(build(&["--sh", "true", "--", "ls"], &[]).is_err());
    }

    #[test]
    fn typo_warnings_suggest_the_closest_name() {
        let c = build(&[], &[("PODVISOR_WAIT_TPC", "x")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("PODVISOR_WAIT_TCP"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn blank_env_is_unset_and_lists_are_trimmed() {
        let c = build(
            &[],
            &[
                ("PODVISOR_WAIT_TCP", " a:1 , b:2 ,"),
                ("PODVISOR_TIMEOUT", "  "),
                ("PODVISOR_QUIET", " Yes "),
            ],
        )
        .unwrap();
        assert_eq!(c.waits.len(), 2);
        assert_eq!(c.waits[1].to_string(), "tcp://b:2");
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.log_level, tracing::Level::ERROR);
    }

    #[test]
    fn booleans_take_every_documented_spelling() {
        for (v, strict) in [
            ("1", false),
            ("true", false),
            ("YES", false),
            ("0", true),
            ("False", true),
            ("no", true),
        ] {
            let c = build(&[], &[("PODVISOR_NO_STRICT", v)]).unwrap();
            assert_eq!(c.strict, strict, "PODVISOR_NO_STRICT={v}");
        }
    }

    #[test]
    fn log_level_flags_beat_variables() {
        let level = |args: &[&str], env: &[(&str, &str)]| build(args, env).unwrap().log_level;
        use tracing::Level;
        assert_eq!(
            level(&["-q"], &[("PODVISOR_LOG_LEVEL", "debug")]),
            Level::ERROR
        );
        assert_eq!(
            level(&["--log-level", "warn", "-q"], &[]),
            Level::WARN,
            "--log-level is the more precise flag"
        );
        assert_eq!(
            level(
                &[],
                &[("PODVISOR_LOG_LEVEL", "debug"), ("PODVISOR_QUIET", "1")]
            ),
            Level::DEBUG
        );
        assert_eq!(level(&[], &[("PODVISOR_QUIET", "true")]), Level::ERROR);
        assert!(build(&["--log-level", "loud"], &[]).is_err());
        assert!(build(&["--log-format", "xml"], &[]).is_err());
        assert_eq!(
            build(&["--log-format", "JSON"], &[]).unwrap().log_format,
            LogFormat::Json
        );
    }

    #[test]
    fn a_command_overrides_podvisor_sh() {
        let c = build(&["echo", "hi"], &[("PODVISOR_SH", "exit 3")]).unwrap();
        assert_eq!(c.command, ["echo", "hi"]);
        assert!(c.warnings.iter().any(|w| w.contains("PODVISOR_SH")));
        let c = build(&[], &[("PODVISOR_SH", "exit 3")]).unwrap();
        assert_eq!(c.command, ["/bin/sh", "-c", "exit 3"]);
    }

    #[test]
    fn flags_after_command_belong_to_it() {
        let c = build(&["--wait-tcp", "x:1", "cmd", "--timeout", "5"], &[]).unwrap();
        assert_eq!(c.command, ["cmd", "--timeout", "5"]);
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(60)));
        let c = build(&["--", "--help"], &[]).unwrap();
        assert_eq!(c.command, ["--help"]);
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins() {
        let c = build(&["--timeout", "1", "--timeout", "2"], &[]).unwrap();
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn non_utf8_values_are_named() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'5', 0xff]);
        let cli =
            Cli::try_parse_from([OsString::from("podvisor"), "--timeout".into(), bad.clone()])
                .unwrap();
        let e = Config::build(&cli, &|_| None, std::iter::empty())
            .unwrap_err()
            .0;
        assert!(e.contains("--timeout") && e.contains("UTF-8"), "{e}");
        // Paths may be any bytes.
        let cli =
            Cli::try_parse_from([OsString::from("podvisor"), "--wait-file".into(), bad]).unwrap();
        assert!(Config::build(&cli, &|_| None, std::iter::empty()).is_ok());
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("WAIT_TCP", "WAIT_TPC"), 1);
        assert_eq!(edit_distance("TIMEOUT", "TIMOUT"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn clap_errors_become_one_line() {
        let text = "error: unexpected argument '--timout' found\n\n  tip: a similar argument exists: '--timeout'\n  tip: to pass '--timout' as a value, use '-- --timout'\n\nUsage: podvisor\n";
        assert_eq!(
            one_line(text),
            "unexpected argument '--timout' found (a similar argument exists: '--timeout')"
        );
        // A value's own newline stays in the message (escaped when logged), not cut there.
        let text = "error: unexpected argument '--x\nforged: line' found\n\nUsage: podvisor\n";
        assert_eq!(
            one_line(text),
            "unexpected argument '--x\nforged: line' found"
        );
    }

    #[test]
    fn map_exit_pairs_and_errors() {
        let c = build(&["--map-exit", "143:0", "--map-exit", "3:0"], &[]).unwrap();
        assert_eq!(c.map_exit, [(143, 0), (3, 0)]);
        let c = build(&[], &[("PODVISOR_MAP_EXIT", "143:0, 1 : 2")]).unwrap();
        assert_eq!(c.map_exit, [(143, 0), (1, 2)]);
        for bad in ["143", "256:0", "x:0", "-1:0", "1:2:3", "1:"] {
            let e = build(&["--map-exit", bad], &[]).unwrap_err().0;
            assert!(e.contains("--map-exit") && e.contains(bad), "{e}");
        }
        let e = build(&[], &[("PODVISOR_MAP_EXIT", "143:0,9")])
            .unwrap_err()
            .0;
        assert!(e.contains("PODVISOR_MAP_EXIT") && e.contains("'9'"), "{e}");
    }

    #[test]
    fn rewrite_to_zero_drops() {
        let c = build(&["--rewrite-signal", "TERM:0"], &[]).unwrap();
        assert_eq!(c.rewrites, [(15, 0)]);
        assert!(build(&["--rewrite-signal", "0:TERM"], &[]).is_err());
    }

    #[test]
    fn until_implies_sidecar() {
        assert!(build(&["--until-marker", "/w/m"], &[]).unwrap().sidecar);
    }
}
