//! What the wait phase waits for: `--wait URL` and the `--wait-*` shorthands, parsed.
//!
//! One syntax for every kind of target (README "Wait targets"): `SCHEME://...`, then the
//! target's own options after `#`, as `name` or `name=value` separated by `&`, values
//! percent-decoded. The fragment is never sent to a server, so it is free for options, and an
//! environment list can carry them (`PODVISOR_WAIT`, split by [`split_list`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Uri;

/// One dependency that must be ready before COMMAND starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP connect to host:port succeeds; names are re-resolved at every attempt.
    Tcp(Tcp),
    /// The path exists.
    File(PathBuf),
    /// A connect to the unix socket succeeds.
    Unix(PathBuf),
    /// A GET (http or https, maybe over a unix socket) answers as expected.
    Http(Http),
    /// A postgres server accepts connections (or is past starting up).
    Postgres(Db),
    /// A redis server answers PING.
    Redis(Db),
    /// A MySQL or MariaDB server greets.
    Mysql(Db),
    /// A log file has lines matching a pattern (issue 12).
    Log(Log),
    /// `/bin/sh -c` of it exits 0.
    Cmd(String),
}

/// `tcp://HOST:PORT#hold=DURATION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// Name or address (IPv6 without brackets).
    pub host: String,
    /// 1 to 65535.
    pub port: u16,
    /// Keep the connection this long; a reset or EOF within it is not ready.
    pub hold: Option<Duration>,
    /// The options as written, for display.
    pub options: String,
}

/// `http://` and `https://` targets with their expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// The URL without its `#` options.
    pub uri: Uri,
    /// `https://`.
    pub tls: bool,
    /// Statuses that count as ready, as inclusive ranges.
    pub status: Vec<(u16, u16)>,
    /// The body must contain this text.
    pub body: Option<String>,
    /// The body must match this expression.
    pub body_regex: Option<Pattern>,
    /// Connect to this unix socket instead of the URL's host (which stays the Host header).
    pub unix: Option<PathBuf>,
    /// Trust the certificates of this PEM file (as well as the system's).
    pub ca: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
    /// The options as written, for display.
    pub options: String,
}

/// The statuses ready by default: 2xx.
pub const DEFAULT_STATUS: (u16, u16) = (200, 299);

/// A database server's address and the identity to present (never required to be right).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Db {
    /// The scheme as written (`postgres`, `postgresql`, `redis`, `mysql`, `mariadb`).
    pub scheme: &'static str,
    /// Name or address (IPv6 without brackets).
    pub host: String,
    /// The URL's port or the scheme's default.
    pub port: u16,
    /// Percent-decoded user, if any.
    pub user: Option<String>,
    /// Percent-decoded password, if any: never shown.
    pub password: Option<String>,
    /// Percent-decoded database (for redis, the database number), if any.
    pub database: Option<String>,
}

/// `log://PATH#regex=RE&count=N` (issue 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The log file.
    pub path: PathBuf,
    /// The pattern a line must match.
    pub regex: Pattern,
    /// How many matching lines are needed.
    pub count: u32,
    /// The options as written, for display.
    pub options: String,
}

/// A compiled regular expression that compares by its text.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex_lite::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(t) => {
                write!(f, "tcp://{}", host_port(&t.host, t.port))?;
                options(f, &t.options)
            }
            Target::File(p) => write!(f, "file://{}", p.display()),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Http(h) => {
                let u = &h.uri;
                match userinfo(u) {
                    // Never a password in a log line or the marker.
                    Some((user, Some(_), host_port)) => write!(
                        f,
                        "{}://{user}:***@{host_port}{}",
                        u.scheme_str().unwrap_or("http"),
                        u.path_and_query().map_or("/", |p| p.as_str())
                    )?,
                    _ => write!(f, "{u}")?,
                }
                options(f, &h.options)
            }
            Target::Postgres(d) | Target::Redis(d) | Target::Mysql(d) => {
                write!(f, "{}://", d.scheme)?;
                match (&d.user, &d.password) {
                    (Some(u), Some(_)) => write!(f, "{u}:***@")?,
                    (None, Some(_)) => write!(f, ":***@")?,
                    (Some(u), None) => write!(f, "{u}@")?,
                    (None, None) => {}
                }
                write!(f, "{}", host_port(&d.host, d.port))?;
                match &d.database {
                    Some(db) => write!(f, "/{db}"),
                    None => Ok(()),
                }
            }
            Target::Log(l) => {
                write!(f, "log://{}", l.path.display())?;
                options(f, &l.options)
            }
            // One line in a log line or the marker, whatever the script.
            Target::Cmd(c) => write!(f, "cmd://{}", c.replace('\n', "\\n")),
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn options(f: &mut fmt::Formatter<'_>, options: &str) -> fmt::Result {
    if options.is_empty() {
        Ok(())
    } else {
        write!(f, "#{options}")
    }
}

/// The URL's `user[:password]@` part, if any, as (user, password, host[:port]).
pub fn userinfo(uri: &Uri) -> Option<(&str, Option<&str>, &str)> {
    let (info, host_port) = uri.authority()?.as_str().rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password), host_port),
        None => (info, None, host_port),
    })
}

/// Every scheme `--wait` takes, for the error about an unknown one.
const SCHEMES: &str =
    "tcp, http, https, unix, file, postgres, postgresql, redis, mysql, mariadb, log";

/// Parses one `--wait` target.
pub fn parse(text: &str) -> Result<Target, String> {
    let text = text.trim();
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("expected SCHEME://..., one of {SCHEMES}"))?;
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let scheme = scheme.to_ascii_lowercase();
    let opts = Options::parse(fragment, &scheme, text)?;
    match scheme.as_str() {
        "tcp" => parse_tcp(rest.strip_suffix('/').unwrap_or(rest), &opts),
        "http" | "https" => parse_http_url(&format!("{scheme}://{rest}"), &opts),
        "unix" => {
            opts.allow(&[])?;
            let path = parse_path(&percent_decode_os(rest))?;
            check_socket_path(&path)?;
            Ok(Target::Unix(path))
        }
        "file" => {
            opts.allow(&[])?;
            Ok(Target::File(parse_path(&percent_decode_os(rest))?))
        }
        "postgres" | "postgresql" => {
            opts.allow(&[])?;
            parse_db(&scheme, rest, 5432).map(Target::Postgres)
        }
        "redis" => {
            opts.allow(&[])?;
            let db = parse_db(&scheme, rest, 6379)?;
            if let Some(n) = &db.database {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 9 {
                    return Err(format!("the redis database must be a number, not '{n}'"));
                }
            }
            Ok(Target::Redis(db))
        }
        "mysql" | "mariadb" => {
            opts.allow(&[])?;
            parse_db(&scheme, rest, 3306).map(Target::Mysql)
        }
        "log" => parse_log(rest, &opts),
        other => Err(format!(
            "unknown scheme {other}://, expected one of {SCHEMES}"
        )),
    }
}

/// The options after `#`: `name` or `name=value`, separated by `&`.
struct Options<'a> {
    /// (name, percent-decoded value) in the order written.
    items: Vec<(&'a str, Option<String>)>,
    /// The fragment as written.
    raw: &'a str,
    /// The scheme, for messages.
    scheme: &'a str,
    /// The whole target, for messages (it may hold a password: shown through `redact`).
    text: &'a str,
}

/// Every option of every scheme, for suggestions and "belongs to another scheme" errors.
const ALL_OPTIONS: &[(&str, &[&str])] = &[
    ("tcp", &["hold"]),
    ("http", &["status", "body", "body-regex", "unix"]),
    (
        "https",
        &["status", "body", "body-regex", "unix", "ca", "insecure"],
    ),
    ("log", &["regex", "count"]),
];

impl<'a> Options<'a> {
    fn parse(raw: &'a str, scheme: &'a str, text: &'a str) -> Result<Self, String> {
        let mut items: Vec<(&str, Option<String>)> = Vec::new();
        for item in raw.split('&').filter(|i| !i.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(percent_decode_text(v)?)),
                None => (item, None),
            };
            if items.iter().any(|(n, _)| *n == name) {
                return Err(format!(
                    "option '{name}' is given twice in {}",
                    redact(text)
                ));
            }
            items.push((name, value));
        }
        Ok(Self {
            items,
            raw,
            scheme,
            text,
        })
    }

    /// Every option given must be one of `known` (the scheme's own options).
    fn allow(&self, known: &[&str]) -> Result<(), String> {
        let text = redact(self.text);
        let scheme = self.scheme;
        for (name, _) in &self.items {
            if known.contains(name) {
                continue;
            }
            let elsewhere: Vec<&str> = ALL_OPTIONS
                .iter()
                .filter(|(_, opts)| opts.contains(name))
                .map(|(s, _)| *s)
                .collect();
            if !elsewhere.is_empty() {
                let takes = if known.is_empty() {
                    format!("{scheme}:// takes no options")
                } else {
                    format!("{scheme}:// takes {}", known.join(", "))
                };
                return Err(format!(
                    "option '{name}' does not apply to {scheme}:// targets (it is for {}://) in {text}; {takes}",
                    elsewhere.join("://, ")
                ));
            }
            return Err(match closest(name, known) {
                Some(best) => {
                    format!("unknown option '{name}' in {text}; did you mean '{best}'?")
                }
                None if known.is_empty() => {
                    format!("unknown option '{name}' in {text}; {scheme}:// takes no options")
                }
                None => format!(
                    "unknown option '{name}' in {text}; {scheme}:// takes {}",
                    known.join(", ")
                ),
            });
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Option<String>> {
        self.items.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The value of an option that needs one.
    fn value(&self, name: &str) -> Result<Option<&str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(format!(
                "option '{name}' needs a value ({name}=...) in {}",
                redact(self.text)
            )),
        }
    }

    /// A flag option: present without a value.
    fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(v)) => Err(format!(
                "option '{name}' takes no value (got '{name}={v}') in {}",
                redact(self.text)
            )),
        }
    }

    fn bad(&self, name: &str, value: &str, why: impl fmt::Display) -> String {
        format!("bad {name}={value} in {}: {why}", redact(self.text))
    }
}

/// The closest name within a small edit distance, if any.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (crate::config::edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The target as it may be shown: a `user:password@` has its password replaced by `***`.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let end = rest.find(['/', '#', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((info, host)) => match info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

fn parse_tcp(rest: &str, opts: &Options) -> Result<Target, String> {
    opts.allow(&["hold"])?;
    let (host, port) = split_host_port(rest)?;
    let port = port.ok_or("expected tcp://HOST:PORT, e.g. tcp://localhost:5432")?;
    let hold = match opts.value("hold")? {
        None => None,
        Some(v) => Some(
            crate::config::duration::parse(v)
                .and_then(|d| {
                    if d.is_zero() {
                        Err("must be greater than 0".to_owned())
                    } else {
                        Ok(d)
                    }
                })
                .map_err(|e| opts.bad("hold", v, e))?,
        ),
    };
    Ok(Target::Tcp(Tcp {
        host,
        port,
        hold,
        options: opts.raw.to_owned(),
    }))
}

fn parse_http_url(url: &str, opts: &Options) -> Result<Target, String> {
    let tls = url.starts_with("https://");
    if tls {
        opts.allow(&["status", "body", "body-regex", "unix", "ca", "insecure"])?;
    } else {
        opts.allow(&["status", "body", "body-regex", "unix"])?;
    }
    let uri = check_http_uri(url)?;
    let status = match opts.value("status")? {
        None => vec![DEFAULT_STATUS],
        Some(v) => parse_status_set(v).map_err(|e| opts.bad("status", v, e))?,
    };
    let body_regex = match opts.value("body-regex")? {
        None => None,
        Some(v) => Some(compile(v).map_err(|e| opts.bad("body-regex", v, e))?),
    };
    let unix = match opts.value("unix")? {
        None => None,
        Some(v) => {
            let path = parse_path(v.as_ref())?;
            check_socket_path(&path).map_err(|e| opts.bad("unix", v, e))?;
            Some(path)
        }
    };
    let ca = opts
        .value("ca")?
        .map(|v| parse_path(v.as_ref()))
        .transpose()?;
    let insecure = opts.flag("insecure")?;
    Ok(Target::Http(Http {
        uri,
        tls,
        status,
        body: opts.value("body")?.map(str::to_owned),
        body_regex,
        unix,
        ca,
        insecure,
        options: opts.raw.to_owned(),
    }))
}

fn parse_log(rest: &str, opts: &Options) -> Result<Target, String> {
    opts.allow(&["regex", "count"])?;
    let path = parse_path(&percent_decode_os(rest))?;
    let regex = match opts.value("regex")? {
        Some(v) => compile(v).map_err(|e| opts.bad("regex", v, e))?,
        None => {
            return Err(format!(
                "log:// needs a regex option (log://PATH#regex=RE) in {}",
                redact(opts.text)
            ))
        }
    };
    let count = match opts.value("count")? {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0 && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| opts.bad("count", v, "expected a whole number, 1 or more"))?,
    };
    Ok(Target::Log(Log {
        path,
        regex,
        count,
        options: opts.raw.to_owned(),
    }))
}

fn compile(re: &str) -> Result<Pattern, String> {
    regex_lite::Regex::new(re)
        .map(Pattern)
        .map_err(|e| e.to_string().replace('\n', " "))
}

/// `200-299,401`: statuses and inclusive ranges, 100 to 599.
pub fn parse_status_set(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let status = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n) && s.trim().bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("'{}' is not a status from 100 to 599", s.trim()))
    };
    let mut set = Vec::new();
    for item in text.split(',') {
        let range = match item.split_once('-') {
            Some((a, b)) => (status(a)?, status(b)?),
            None => {
                let n = status(item)?;
                (n, n)
            }
        };
        if range.0 > range.1 {
            return Err(format!("the range {}-{} is empty", range.0, range.1));
        }
        set.push(range);
    }
    Ok(set)
}

/// The database schemes, so that a `Db` names its own as written.
const DB_SCHEMES: [&str; 5] = ["postgres", "postgresql", "redis", "mysql", "mariadb"];

/// `[user[:password]@]host[:port][/database][?ignored]` of a database URL.
fn parse_db(scheme: &str, rest: &str, default_port: u16) -> Result<Db, String> {
    let scheme = DB_SCHEMES
        .into_iter()
        .find(|s| *s == scheme)
        .ok_or_else(|| format!("{scheme}:// is not a database scheme"))?;
    // libpq-style parameters (`?sslmode=disable`) are the client's business: ignored, so that a
    // DATABASE_URL can be used as it is.
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (info, host_port) = match authority.rsplit_once('@') {
        Some((info, hp)) => (Some(info), hp),
        None => (None, authority),
    };
    let (user, password) = match info {
        None => (None, None),
        Some(info) => {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let u = percent_decode_text(u)?;
            let p = p.map(percent_decode_text).transpose()?;
            ((!u.is_empty()).then_some(u), p)
        }
    };
    let (host, port) = split_host_port(host_port)?;
    let database = percent_decode_text(path.trim_end_matches('/'))?;
    Ok(Db {
        scheme,
        host,
        port: port.unwrap_or(default_port),
        user,
        password,
        database: (!database.is_empty()).then_some(database),
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (inner, after) = rest
                .split_once(']')
                .ok_or("expected an IPv6 address inside [ ]")?;
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("expected an IPv6 address inside [ ]".into());
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected :PORT after ]")?),
            };
            (inner, port)
        }
        None => match text.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("write IPv6 addresses as [ADDR]:PORT".into())
            }
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['/', '@', '?']) {
        return Err("expected a host name or address".into());
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host.to_owned(), port))
}

/// Parses `host:port`, `1.2.3.4:80`, `[::1]:80` (`--wait-tcp`).
pub fn parse_host_port(text: &str) -> Result<Target, String> {
    if text.contains(',') {
        return Err("one HOST:PORT per flag (comma lists are for PODVISOR_WAIT_TCP)".into());
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "expected HOST:PORT without {scheme}://, e.g. localhost:5432 (URLs are for --wait, and --wait-http)"
        ));
    }
    // `HOST:PORT#hold=500ms`: the options of a tcp:// target.
    if text.contains('#') {
        return parse(&format!("tcp://{text}"));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("expected HOST:PORT, e.g. localhost:5432 or [::1]:80")?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or("expected an IPv6 address inside [ ]")?,
        None if host.contains(':') => return Err("write IPv6 addresses as [ADDR]:PORT".into()),
        None => host,
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err("expected HOST:PORT with a host name or address".into());
    }
    let port = parse_port(port)?;
    Ok(Target::Tcp(Tcp {
        host: host.to_owned(),
        port,
        hold: None,
        options: String::new(),
    }))
}

/// A port from 1 to 65535, digits only (`u16::from_str` would also take `+80`).
fn parse_port(text: &str) -> Result<u16, String> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0)
        .ok_or_else(|| "the port must be a number from 1 to 65535".to_owned())
}

/// Parses an `http://` or `https://` URL with its options (`--wait-http`).
pub fn parse_http(text: &str) -> Result<Target, String> {
    match text.trim().split_once("://") {
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            parse(text)
        }
        Some((other, _)) => Err(format!(
            "scheme {other}:// is not supported by --wait-http, only http:// and https:// (--wait takes every scheme)"
        )),
        None => Err("expected an absolute URL starting with http:// or https://".into()),
    }
}

/// The URL without its options, checked where `Uri` is lenient.
fn check_http_uri(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.host() {
        Some(h) if !h.is_empty() => {}
        _ => return Err("the URL has no host".into()),
    }
    // `Uri` takes any text after the colon (its `port()` is then None), and the probe would
    // quietly use port 80 (`http://db:8o80/`): check the text here, as --wait-tcp does.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    if let Some(port) = after_host.strip_prefix(':') {
        parse_port(port)?;
    }
    Ok(uri)
}

/// A path must not be empty; any bytes are fine otherwise.
pub fn parse_path(text: &OsStr) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(text))
}

/// The longest path a unix socket address holds: sun_path is 108 bytes with the final NUL
/// (unix(7)). A longer one could never connect, and would only wait out the whole timeout.
pub const MAX_SOCKET_PATH: usize = 107;

/// A `--wait-unix` path must fit in sun_path.
pub fn check_socket_path(path: &std::path::Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "the path is {len} bytes long, a unix socket path can have at most {MAX_SOCKET_PATH}"
        ));
    }
    Ok(())
}

/// `%XX` escapes decoded; anything else (a stray `%` included) kept as it is.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn percent_decode_text(text: &str) -> Result<String, String> {
    String::from_utf8(percent_decode(text))
        .map_err(|_| format!("'{text}' decodes to bytes that are not UTF-8"))
}

fn percent_decode_os(text: &str) -> OsString {
    OsString::from_vec(percent_decode(text))
}

/// Splits a `PODVISOR_WAIT` list: only at a comma followed (after blanks) by `SCHEME://`, so
/// that a target's own commas (`#status=200-299,401`) stay in it. Items are trimmed of blanks
/// and stray commas (`a, , b,`), empty ones dropped.
pub fn split_list(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices(',') {
        if starts_with_scheme(text[i + 1..].trim_start()) {
            items.push(&text[start..i]);
            start = i + 1;
        }
    }
    items.push(&text[start..]);
    items
        .into_iter()
        .map(|s| s.trim_matches(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `SCHEME://` as RFC 3986 spells a scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn starts_with_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp(Tcp {
            host: host.into(),
            port,
            hold: None,
            options: String::new(),
        })
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            parse_host_port("localhost:5432"),
            Ok(tcp("localhost", 5432))
        );
        assert_eq!(parse_host_port("[::1]:80"), Ok(tcp("::1", 80)));
        for bad in [
            "localhost",
            ":80",
            "h:0",
            "h:65536",
            "h:x",
            "::1:80",
            "[::1:80",
            "[zz]:80",
            "",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_host_port("[::1]:80").unwrap().to_string(),
            "tcp://[::1]:80"
        );
    }

    #[test]
    fn more_host_ports() {
        for (text, host, port) in [
            ("127.0.0.1:80", "127.0.0.1", 80),
            (
                "db.ns.svc.cluster.local:5432",
                "db.ns.svc.cluster.local",
                5432,
            ),
            ("[fe80::1]:65535", "fe80::1", 65535),
            ("h:1", "h", 1),
        ] {
            assert_eq!(parse_host_port(text), Ok(tcp(host, port)), "{text}");
        }
        for bad in [
            "h :80", "h/x:80", "[]:80", "h:", "h:+80x", "h:+80", "h:-1", "a:1,b:2",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
        // A URL gets a hint about the scheme, not the one about IPv6 (it has two colons).
        let e = parse_host_port("http://localhost:80").unwrap_err();
        assert!(e.contains("http://") && !e.contains("IPv6"), "{e}");
        match parse_host_port("db:5432#hold=2s") {
            Ok(Target::Tcp(t)) => assert_eq!(t.hold, Some(Duration::from_secs(2))),
            other => panic!("{other:?}"),
        }
        assert!(parse_host_port("db:5432#status=200").is_err());
    }

    #[test]
    fn shown_as_urls() {
        let t = |s: &str| parse_http(s).unwrap().to_string();
        assert_eq!(t("http://[::1]:8080/x?y=1"), "http://[::1]:8080/x?y=1");
        assert_eq!(
            Target::File("/w/ready".into()).to_string(),
            "file:///w/ready"
        );
        assert_eq!(
            Target::Unix("/run/s.sock".into()).to_string(),
            "unix:///run/s.sock"
        );
        assert_eq!(
            Target::Cmd("pg_isready".into()).to_string(),
            "cmd://pg_isready"
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let t = |s: &str| parse(s).unwrap().to_string();
        assert_eq!(
            t("http://me:secret@db:8080/h?x"),
            "http://me:***@db:8080/h?x"
        );
        assert_eq!(
            t("https://me:secret@db/#insecure"),
            "https://me:***@db/#insecure"
        );
        assert_eq!(t("http://me@db/"), "http://me@db/");
        assert_eq!(
            t("postgres://app:s3cret@db/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(t("redis://:s3cret@cache"), "redis://:***@cache:6379");
        assert_eq!(
            t("mysql://root:s3cret@[::1]:3307"),
            "mysql://root:***@[::1]:3307"
        );
        for text in [
            "postgres://app:s3cret@db/app#stauts=1",
            "https://me:s3cret@db/#stauts=200",
            "redis://:s3cret@cache/x",
            "http://me:s3cret@db/#insecure",
        ] {
            let e = parse(text).unwrap_err();
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert_eq!(
            redact("redis://u:p@h:1/0#x"),
            "redis://u:***@h:1/0#x".to_owned()
        );
    }

    #[test]
    fn every_scheme() {
        let p = |s: &str| parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p("tcp://localhost:5432"), tcp("localhost", 5432));
        assert_eq!(p("TCP://[::1]:80/"), tcp("::1", 80));
        match p("tcp://envoy:15000#hold=250ms") {
            Target::Tcp(t) => assert_eq!(t.hold, Some(Duration::from_millis(250))),
            t => panic!("{t:?}"),
        }
        assert_eq!(p("file:///w/ready"), Target::File("/w/ready".into()));
        assert_eq!(p("file://rel/x%23y"), Target::File("rel/x#y".into()));
        assert_eq!(
            p("unix:///var/run/docker.sock"),
            Target::Unix("/var/run/docker.sock".into())
        );
        let db = |t: Target| match t {
            Target::Postgres(d) | Target::Redis(d) | Target::Mysql(d) => d,
            t => panic!("{t:?}"),
        };
        let d = db(p("postgres://localhost"));
        assert_eq!(
            (d.host.as_str(), d.port, d.user, d.database),
            ("localhost", 5432, None, None)
        );
        let d = db(p("postgresql://app:p%40ss@db:6543/my%20db?sslmode=disable"));
        assert_eq!(d.scheme, "postgresql");
        assert_eq!(d.user.as_deref(), Some("app"));
        assert_eq!(d.password.as_deref(), Some("p@ss"));
        assert_eq!(d.database.as_deref(), Some("my db"));
        assert_eq!(d.port, 6543);
        let d = db(p("redis://:pw@cache/3"));
        assert_eq!(
            (d.user, d.password.as_deref(), d.port),
            (None, Some("pw"), 6379)
        );
        assert_eq!(d.database.as_deref(), Some("3"));
        let d = db(p("redis://default:pw@cache:6380"));
        assert_eq!(d.user.as_deref(), Some("default"));
        assert!(
            matches!(p("mariadb://root@db"), Target::Mysql(d) if d.port == 3306 && d.scheme == "mariadb")
        );
        assert!(matches!(p("mysql://[::1]"), Target::Mysql(d) if d.host == "::1"));
        match p("log:///var/log/x.log#regex=ready%20to%20accept&count=2") {
            Target::Log(l) => {
                assert_eq!(l.path, PathBuf::from("/var/log/x.log"));
                assert_eq!(l.regex.0.as_str(), "ready to accept");
                assert_eq!(l.count, 2);
            }
            t => panic!("{t:?}"),
        }
        match p("https://es:9200/_cluster/health?wait_for_status=yellow#status=200-299,401&body=green&ca=/ca.pem") {
            Target::Http(h) => {
                assert!(h.tls && !h.insecure);
                assert_eq!(h.status, [(200, 299), (401, 401)]);
                assert_eq!(h.body.as_deref(), Some("green"));
                assert_eq!(h.ca, Some(PathBuf::from("/ca.pem")));
                assert_eq!(h.uri.path_and_query().unwrap().as_str(), "/_cluster/health?wait_for_status=yellow");
            }
            t => panic!("{t:?}"),
        }
        match p("http://localhost/_ping#unix=/var/run/docker.sock&body-regex=^OK$") {
            Target::Http(h) => {
                assert!(!h.tls);
                assert_eq!(h.unix, Some(PathBuf::from("/var/run/docker.sock")));
                assert!(h.body_regex.unwrap().0.is_match("OK"));
                assert_eq!(h.status, [DEFAULT_STATUS]);
            }
            t => panic!("{t:?}"),
        }
        assert_eq!(
            p("https://x/#insecure&body=a%26b%23c%2Cd%25").to_string(),
            "https://x/#insecure&body=a%26b%23c%2Cd%25"
        );
        match p("https://x/#insecure&body=a%26b%23c%2Cd%25") {
            Target::Http(h) => assert_eq!(h.body.as_deref(), Some("a&b#c,d%")),
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn bad_targets() {
        for (bad, says) in [
            ("localhost:5432", "SCHEME://"),
            ("ftp://x/", "unknown scheme ftp://"),
            ("tcp://localhost", "tcp://HOST:PORT"),
            ("tcp://h:0", "port"),
            ("tcp://h:1#hold=soon", "hold=soon"),
            ("tcp://h:1#hold=0", "greater than 0"),
            ("tcp://h:1#hold", "needs a value"),
            ("https://x/#insecure=yes", "takes no value"),
            ("https://x/#status=200-", "status"),
            ("https://x/#status=99", "100 to 599"),
            ("https://x/#status=300-200", "empty"),
            ("https://x/#body-regex=(", "body-regex"),
            ("http://x/#ca=/a.pem", "does not apply to http://"),
            ("http://x/#insecure", "does not apply"),
            ("postgres://db#hold=1s", "does not apply"),
            ("redis://db/x", "number"),
            ("log:///x", "needs a regex"),
            ("log:///x#regex=a&count=0", "count"),
            ("unix://", "empty"),
            ("file://", "empty"),
            ("http://h:99999/", "port"),
            ("https://x/#body=a&body=b", "twice"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_options_name_the_closest() {
        assert_eq!(
            parse("https://es:9200/#stauts=200").unwrap_err(),
            "unknown option 'stauts' in https://es:9200/#stauts=200; did you mean 'status'?"
        );
        let e = parse("tcp://h:1#hodl=1s").unwrap_err();
        assert!(e.ends_with("did you mean 'hold'?"), "{e}");
        let e = parse("https://h/#insecur").unwrap_err();
        assert!(e.ends_with("did you mean 'insecure'?"), "{e}");
        let e = parse("postgres://h#whatever").unwrap_err();
        assert!(e.contains("takes no options"), "{e}");
    }

    #[test]
    fn env_lists_split_before_schemes_only() {
        assert_eq!(
            split_list("https://x/#status=200-299,401, postgres://localhost"),
            ["https://x/#status=200-299,401", "postgres://localhost"]
        );
        assert_eq!(
            split_list(" tcp://a:1,tcp://b:2 ,, file:///x,"),
            ["tcp://a:1", "tcp://b:2", "file:///x"]
        );
        assert_eq!(split_list(""), Vec::<&str>::new());
        assert_eq!(
            split_list("http://h/#body=a,b,c,redis://r"),
            ["http://h/#body=a,b,c", "redis://r"]
        );
    }

    #[test]
    fn socket_paths_fit_in_sun_path() {
        let path = |n: usize| PathBuf::from(format!("/{}", "s".repeat(n - 1)));
        assert!(check_socket_path(&path(MAX_SOCKET_PATH)).is_ok());
        assert!(check_socket_path(&path(MAX_SOCKET_PATH + 1)).is_err());
    }

    #[test]
    fn empty_paths_are_rejected() {
        assert!(parse_path("".as_ref()).is_err());
        assert_eq!(parse_path("a b".as_ref()), Ok(PathBuf::from("a b")));
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("open%20sesame"), b"open sesame");
        assert_eq!(percent_decode("a%3Ab%40"), b"a:b@");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    }

    #[test]
    fn urls() {
        assert!(parse_http("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_http("http://localhost/").is_ok());
        assert!(parse_http("http://[::1]:65535/").is_ok());
        assert!(parse_http("https://x/").is_ok());
        for bad in [
            "ftp://x/",
            "localhost:80",
            "/path",
            "http://",
            "not a url",
            "http://h:99999/",
            "http://h:65536/",
            "http://h:0/",
            "http://h:abc/",
            "http://h:+80/",
            "http://h:/",
        ] {
            assert!(parse_http(bad).is_err(), "{bad:?}");
        }
    }
}
