//! Fuzzed input, parser by parser (issue 15, item 1): every parser of a value a user types —
//! durations, signal names and numbers, HOST:PORT and URL targets, paths, booleans, rewrite
//! maps, environment lists — never panics, never hangs, and rejects with one line naming the
//! flag or variable and the value. Property tests (proptest) on the library's own parsers and on
//! `Config::build`, which joins flags and `PODVISOR_*` variables.
//!
//! PROPTEST_CASES raises the number of cases (scripts/reliability --full: 20 000).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use proptest::prelude::*;

use podvisor::config::cli::{self, Cli};
use podvisor::config::{duration, Config};
use podvisor::logging;
use podvisor::run::signals;
use podvisor::wait::target;

/// Anything a user could type, weighted towards the characters the parsers care about.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9a-zA-Z:+\\-\\.\\[\\]/@%#&=, \\n]{0,40}",
        "(SIG)?(RTMIN|RTMAX|TERM|rtmin|KILL)[+-]{0,2}[0-9]{0,12}",
        "[0-9]{0,25}(\\.[0-9]{0,25})?(e[+-]?[0-9]{1,4})?(ns|us|ms|s|m|h|d|w|y|x)?",
        "(https?|ftp|tcp)://[a-z0-9:@\\[\\]\\.%]{0,20}(/[ -~]{0,20})?",
        edges(),
    ]
}

/// Numbers at the edges of the integer types, where arithmetic on a parsed value overflows,
/// after the prefixes that do arithmetic with them.
fn edges() -> impl Strategy<Value = String> {
    let prefixes = vec![
        "",
        "RTMIN+",
        "RTMAX-",
        "SIGRTMIN",
        "RTMAX",
        "db:",
        "http://db:",
    ];
    let numbers = prop_oneof![
        prop::sample::select(vec![
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::from(i32::MAX) - 30,
            i64::from(u16::MAX) + 1,
            i64::from(u32::MAX),
            i64::MAX,
            i64::MIN,
            0,
        ]),
        any::<i64>(),
    ];
    (prop::sample::select(prefixes), numbers, "(s|ms|h|/)?")
        .prop_map(|(prefix, n, unit)| format!("{prefix}{n}{unit}"))
}

/// Raw bytes, non-UTF-8 included.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

/// Runs `f`, asserting it returns within a second (a parser must never hang or crawl).
fn quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{what} took {:?}",
        start.elapsed()
    );
    out
}

/// The error as podvisor prints it in text format: one line.
fn one_printed_line(e: &str) -> bool {
    !logging::escaped(e).contains('\n')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
    ))]

    #[test]
    fn durations_never_panic_and_stay_bounded(text in typed()) {
        if let Ok(d) = quick("duration::parse", || duration::parse(&text)) {
            prop_assert!(d <= duration::LONGEST);
        }
    }

    #[test]
    fn valid_durations_are_taken(n in 0u64..1_000_000, unit in prop::sample::select(vec!["ms", "s", "m", "h", "d", ""])) {
        let text = format!("{n}{unit}");
        prop_assert!(duration::parse(&text).is_ok(), "{text}");
    }

    #[test]
    fn signal_parsing_never_panics(text in typed()) {
        if let Ok(n) = quick("signals::parse", || signals::parse(&text)) {
            prop_assert!((1..=nix::libc::SIGRTMAX()).contains(&n), "{text} -> {n}");
        }
    }

    #[test]
    fn every_signal_name_round_trips(n in 1..=64i32) {
        // 32 and 33 are glibc's own; named by number in that case.
        let name = signals::name(n);
        if !name.starts_with("signal ") {
            prop_assert_eq!(signals::parse(&name), Ok(n), "{}", name);
        }
        prop_assert_eq!(signals::parse(&n.to_string()), Ok(n));
    }

    #[test]
    fn targets_never_panic(text in typed()) {
        let _ = quick("parse_host_port", || target::parse_host_port(&text));
        let _ = quick("parse_http", || target::parse_http(&text));
    }

    #[test]
    fn valid_host_ports_are_taken(host in "[a-z][a-z0-9\\-]{0,20}(\\.[a-z0-9]{1,10}){0,3}", port in 1u16..) {
        let text = format!("{host}:{port}");
        let t = target::parse_host_port(&text);
        prop_assert!(t.is_ok(), "{} -> {:?}", text, t);
        prop_assert_eq!(t.unwrap().to_string(), format!("tcp://{text}"));
    }

    #[test]
    fn paths_take_any_bytes_but_empty(raw in bytes()) {
        let p = target::parse_path(&OsString::from_vec(raw.clone()));
        prop_assert_eq!(p.is_ok(), !raw.is_empty());
    }

    /// Every option's value, from a flag: accepted, or one line naming the flag and the value.
    #[test]
    fn every_flag_value_is_taken_or_named(
        long in prop::sample::select(value_options()),
        value in prop_oneof![typed().prop_map(String::into_bytes), bytes()],
    ) {
        let value = OsString::from_vec(value);
        let argv = [OsString::from("podvisor"), format!("--{long}").into(), value.clone()];
        // clap's own errors (a value that looks like a flag) are covered by tests/fuzz_binary.rs.
        let Ok(cli) = Cli::try_parse_from(argv) else { return Ok(()) };
        let built = quick("Config::build", || Config::build(&cli, &|_| None, std::iter::empty()));
        if let Err(e) = built {
            prop_assert!(e.0.contains(&format!("--{long}")), "{e}");
            // The value as given (bytes that are not UTF-8 as \xNN), unless a password in it
            // is shown as *** or the message names the target in its own words.
            let shown = logging::show_bytes(&value);
            prop_assert!(e.0.contains(&shown) || shown.contains('@') || long == "wait", "{e}");
            prop_assert!(one_printed_line(&e.0), "{e}");
        }
    }

    /// Every variable, lists and booleans included, with any bytes: accepted, or one line naming
    /// the variable.
    #[test]
    fn every_variable_value_is_taken_or_named(
        vars in proptest::collection::vec(
            (prop::sample::select(cli::option_names()), prop_oneof![typed().prop_map(String::into_bytes), bytes()]),
            1..4,
        ),
    ) {
        let env: Vec<(OsString, OsString)> = vars
            .iter()
            .filter(|(long, _)| !matches!(long.as_str(), "help" | "version"))
            .map(|(long, v)| (cli::env_name(long).into(), OsString::from_vec(v.clone())))
            .collect();
        let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let cli = Cli::try_parse_from(["podvisor"]).expect("no flags");
        let built = quick("Config::build", || Config::build(&cli, &lookup, env.clone().into_iter()));
        if let Err(e) = built {
            prop_assert!(e.0.contains("PODVISOR_"), "{e}");
            prop_assert!(one_printed_line(&e.0), "{e}");
        }
    }
}

/// Options that take a value (not the boolean flags), as clap knows them.
fn value_options() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect()
}

#[test]
fn overflowing_real_time_offsets_are_rejected() {
    // Found by signal_parsing_never_panics: a panic ("attempt to add with overflow").
    for text in [
        "RTMIN+2147483647",
        "RTMAX--2147483648",
        "SIGRTMAX-+3",
        "RTMIN++1",
    ] {
        assert!(signals::parse(text).is_err(), "{text}");
    }
}
