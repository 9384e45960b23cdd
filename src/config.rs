//! The validated configuration: flags merged with `PODVISOR_*` variables, every value parsed.
//!
//! A flag overrides its variable; an empty variable counts as unset; repeatable options take a
//! comma-separated list in the environment. Every error names the flag or variable and the value.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use nix::libc;

use crate::cli::{self, Cli};
use crate::wait::policy::Policy;
use crate::wait::target::{self, Target};
use crate::{duration, signals};

/// Format of podvisor's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `podvisor: ...` lines.
    Text,
    /// One JSON object per line.
    Json,
}

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
    /// Time between a terminating signal and SIGKILL.
    pub grace_period: Duration,
    /// Where to write the step's marker.
    pub marker: Option<PathBuf>,
    /// Paths that must all exist before the sidecar stops.
    pub until_files: Vec<PathBuf>,
    /// Command containers' markers that must all be finished before the sidecar stops.
    pub until_markers: Vec<PathBuf>,
    /// The signal that stops the child in the sidecar role.
    pub stop_signal: i32,
    /// Sidecar role (also implied by any until-condition).
    pub sidecar: bool,
    /// Copy the executable here and exit.
    pub install_to: Option<PathBuf>,
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
}

/// A raw value and where it came from, for error messages.
struct Raw {
    value: String,
    origin: String,
}

impl Raw {
    fn bad(&self, why: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!(
            "invalid value '{}' for {}: {why}",
            self.value, self.origin
        ))
    }
}

impl Sources<'_> {
    fn env_value(&self, long: &str) -> Result<Option<Raw>, ConfigError> {
        let name = cli::env_name(long);
        match (self.env)(&name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => match v.into_string() {
                Ok(value) => Ok(Some(Raw {
                    value,
                    origin: name,
                })),
                Err(v) => Err(ConfigError(format!(
                    "invalid value '{}' for {name}: not valid UTF-8",
                    v.to_string_lossy()
                ))),
            },
        }
    }

    fn one(&self, long: &str, flag: &Option<String>) -> Result<Option<Raw>, ConfigError> {
        match flag {
            Some(value) => Ok(Some(Raw {
                value: value.clone(),
                origin: format!("--{long}"),
            })),
            None => self.env_value(long),
        }
    }

    fn many(&self, long: &str, flags: &[String]) -> Result<Vec<Raw>, ConfigError> {
        if !flags.is_empty() {
            return Ok(flags
                .iter()
                .map(|value| Raw {
                    value: value.clone(),
                    origin: format!("--{long}"),
                })
                .collect());
        }
        Ok(match self.env_value(long)? {
            None => Vec::new(),
            Some(raw) => raw
                .value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|value| Raw {
                    value: value.to_owned(),
                    origin: raw.origin.clone(),
                })
                .collect(),
        })
    }

    fn flag(&self, long: &str, given: bool) -> Result<bool, ConfigError> {
        if given {
            return Ok(true);
        }
        match self.env_value(long)? {
            None => Ok(false),
            Some(raw) => match raw.value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => Err(raw.bad("expected 1/0, true/false or yes/no")),
            },
        }
    }

    fn duration(
        &self,
        long: &str,
        flag: &Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.one(long, flag)? {
            None => Ok(default),
            Some(raw) => duration::parse(&raw.value).map_err(|e| raw.bad(e)),
        }
    }

    fn paths(&self, long: &str, flags: &[String]) -> Result<Vec<PathBuf>, ConfigError> {
        self.many(long, flags)?
            .into_iter()
            .map(|raw| target::parse_path(&raw.value).map_err(|e| raw.bad(e)))
            .collect()
    }

    fn signal(&self, long: &str, flag: &Option<String>, default: i32) -> Result<i32, ConfigError> {
        match self.one(long, flag)? {
            None => Ok(default),
            Some(raw) => signals::parse(&raw.value).map_err(|e| raw.bad(e)),
        }
    }
}

impl Config {
    /// Parses the process's own arguments and environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cli = Cli::try_parse_from_os_args()?;
        Self::build(&cli, &|name| std::env::var_os(name), std::env::vars_os())
    }

    /// Merges parsed flags with an environment (a lookup and the full list, for typo warnings).
    pub fn build(
        cli: &Cli,
        env: &dyn Fn(&str) -> Option<OsString>,
        all_env: impl Iterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let src = Sources { env };

        let mut waits = Vec::new();
        for raw in src.many("wait-tcp", &cli.wait_tcp)? {
            waits.push(target::parse_host_port(&raw.value).map_err(|e| raw.bad(e))?);
        }
        for raw in src.many("wait-file", &cli.wait_file)? {
            waits.push(Target::File(
                target::parse_path(&raw.value).map_err(|e| raw.bad(e))?,
            ));
        }
        for raw in src.many("wait-unix", &cli.wait_unix)? {
            waits.push(Target::Unix(
                target::parse_path(&raw.value).map_err(|e| raw.bad(e))?,
            ));
        }
        for raw in src.many("wait-http", &cli.wait_http)? {
            waits.push(target::parse_http(&raw.value).map_err(|e| raw.bad(e))?);
        }
        for raw in src.many("wait-cmd", &cli.wait_cmd)? {
            waits.push(Target::Cmd(raw.value));
        }

        let interval = src.duration("interval", &cli.interval, Duration::from_millis(100))?;
        if interval.is_zero() {
            let raw = src.one("interval", &cli.interval)?;
            if let Some(raw) = raw {
                return Err(raw.bad("must be greater than 0"));
            }
        }
        let max_interval = src.duration("max-interval", &cli.max_interval, interval)?;
        let timeout = src.duration("timeout", &cli.timeout, Duration::from_secs(60))?;
        let attempt_timeout = src.duration(
            "attempt-timeout",
            &cli.attempt_timeout,
            Duration::from_secs(5),
        )?;
        if attempt_timeout.is_zero() {
            if let Some(raw) = src.one("attempt-timeout", &cli.attempt_timeout)? {
                return Err(raw.bad("must be greater than 0"));
            }
        }
        let retries = match src.one("retries", &cli.retries)? {
            None => None,
            Some(raw) => Some(
                raw.value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| raw.bad("expected a whole number of retries (0 or more)"))?,
            ),
        };

        let sh = src.one("sh", &cli.sh)?;
        let command = match sh {
            Some(raw) if !cli.command.is_empty() => {
                return Err(ConfigError(format!(
                    "{} cannot be combined with a COMMAND ({})",
                    raw.origin,
                    cli.command[0].to_string_lossy()
                )))
            }
            Some(raw) => vec!["/bin/sh".into(), "-c".into(), raw.value.into()],
            None => cli.command.clone(),
        };

        let log_format = match src.one("log-format", &cli.log_format)? {
            None => LogFormat::Text,
            Some(raw) => match raw.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(raw.bad("expected text or json")),
            },
        };
        let quiet = src.flag("quiet", cli.quiet)?;
        let log_level = match src.one("log-level", &cli.log_level)? {
            None if quiet => tracing::Level::ERROR,
            None => tracing::Level::INFO,
            Some(raw) => match raw.value.to_ascii_lowercase().as_str() {
                "error" => tracing::Level::ERROR,
                "warn" | "warning" => tracing::Level::WARN,
                "info" => tracing::Level::INFO,
                "debug" => tracing::Level::DEBUG,
                "trace" => tracing::Level::TRACE,
                _ => return Err(raw.bad("expected error, warn, info or debug")),
            },
        };

        let mut rewrites = Vec::new();
        for raw in src.many("rewrite-signal", &cli.rewrite_signal)? {
            let (from, to) = raw
                .value
                .split_once(':')
                .ok_or_else(|| raw.bad("expected FROM:TO, e.g. TERM:QUIT"))?;
            let from = signals::parse(from).map_err(|e| raw.bad(format!("{from}: {e}")))?;
            let to = signals::parse(to).map_err(|e| raw.bad(format!("{to}: {e}")))?;
            rewrites.push((from, to));
        }

        let until_files = src.paths("until-file", &cli.until_file)?;
        let until_markers = src.paths("until-marker", &cli.until_marker)?;
        let sidecar = src.flag("sidecar", cli.sidecar)?
            || !until_files.is_empty()
            || !until_markers.is_empty();

        let marker = match src.one("marker", &cli.marker)? {
            None => None,
            Some(raw) => Some(target::parse_path(&raw.value).map_err(|e| raw.bad(e))?),
        };
        let install_to = match src.one("install-to", &cli.install_to)? {
            None => None,
            Some(raw) => Some(target::parse_path(&raw.value).map_err(|e| raw.bad(e))?),
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
            grace_period: src.duration(
                "grace-period",
                &cli.grace_period,
                Duration::from_secs(10),
            )?,
            marker,
            until_files,
            until_markers,
            stop_signal: src.signal("stop-signal", &cli.stop_signal, libc::SIGTERM)?,
            sidecar,
            install_to,
            warnings: unknown_variables(all_env),
        })
    }

    /// The signal to forward in place of `signo`.
    pub fn rewrite(&self, signo: i32) -> i32 {
        self.rewrites
            .iter()
            .find(|(from, _)| *from == signo)
            .map_or(signo, |&(_, to)| to)
    }
}

impl Cli {
    fn try_parse_from_os_args() -> Result<Cli, ConfigError> {
        use clap::Parser;
        Cli::try_parse().map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                // Help and version are not errors: print them and leave with 0.
                let _ = e.print();
                std::process::exit(0)
            }
            _ => ConfigError(first_line(&e.render().to_string())),
        })
    }
}

/// clap's messages span several lines (usage, tips); the contract is one line.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("invalid arguments").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Warnings for `PODVISOR_*` variables that match no option, with the closest real name.
fn unknown_variables(all_env: impl Iterator<Item = (OsString, OsString)>) -> Vec<String> {
    let known: HashSet<String> = cli::option_names()
        .iter()
        .map(|l| cli::env_name(l))
        .collect();
    let mut warnings = Vec::new();
    for (name, _) in all_env {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("PODVISOR_") || known.contains(name) {
            continue;
        }
        let closest = known.iter().min_by_key(|k| edit_distance(k, name));
        warnings.push(match closest {
            Some(k) if edit_distance(k, name) <= 4 => {
                format!("unknown variable {name} is ignored; did you mean {k}?")
            }
            _ => format!("unknown variable {name} is ignored"),
        });
    }
    warnings.sort();
    warnings
}

/// Levenshtein distance; short names only, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    #[test]
    fn defaults() {
        let c = build(&[], &[]).unwrap();
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.policy.interval, Duration::from_millis(100));
        assert_eq!(c.policy.max_interval, Duration::from_millis(100));
        assert_eq!(c.policy.retries, None);
        assert_eq!(c.policy.attempt_timeout, Duration::from_secs(5));
        assert_eq!(c.grace_period, Duration::from_secs(10));
        assert_eq!(c.stop_signal, libc::SIGTERM);
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
        assert!(build(&["--wait-http", "https://x/"], &[]).is_err());
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
    fn until_implies_sidecar() {
        assert!(build(&["--until-marker", "/w/m"], &[]).unwrap().sidecar);
    }
}
