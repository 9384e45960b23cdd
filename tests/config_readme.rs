//! The README's option table and `podvisor --help` tell the same story: every option of the
//! binary has a row with its variable, and the defaults agree.

mod support;

use support::TestCommand;

/// The README's usage section.
fn usage_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find("<!-- section: usage")
        .expect("usage section start");
    let end = readme
        .find("<!-- end section: usage -->")
        .expect("usage section end");
    readme[start..end].to_owned()
}

/// (long option, default from `[default: ...]`) for every option in --help.
fn help_options() -> Vec<(String, Option<String>)> {
    let help = TestCommand::new().arg("--help").run().stdout();
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-q, ").unwrap_or(line);
            let long = line.strip_prefix("--")?;
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let default = line
                .split("[default: ")
                .nth(1)
                .and_then(|d| d.split(']').next())
                .map(str::to_owned);
            Some((name, default))
        })
        .filter(|(name, _)| name != "help" && name != "version")
        .collect()
}

#[test]
fn every_option_in_help_has_a_readme_row_with_its_variable_and_default() {
    let usage = usage_section();
    let options = help_options();
    assert!(options.len() >= 20, "{options:?}");
    for (long, default) in options {
        let row = usage
            .lines()
            .find(|l| {
                // The whole name: the row of `--wait` is not the one of `--wait-tcp`.
                let rest = l
                    .strip_prefix(&format!("| `--{long}"))
                    .or_else(|| l.strip_prefix(&format!("| `-q`, `--{long}")));
                rest.is_some_and(|r| r.starts_with([' ', '`']))
            })
            .unwrap_or_else(|| panic!("README has no row for --{long}"));
        let var = format!("`PODVISOR_{}`", long.to_ascii_uppercase().replace('-', "_"));
        assert!(row.contains(&var), "row for --{long} lacks {var}: {row}");
        if let Some(default) = default {
            let cells: Vec<String> = row.split(" | ").map(|c| c.replace('`', "")).collect();
            assert!(
                cells.iter().any(|c| c.trim() == default),
                "--help says the default of --{long} is {default:?}; README row: {row}"
            );
        }
    }
}
