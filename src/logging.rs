//! podvisor's own log lines on stderr: `podvisor: ...` text, or one JSON object per line.
//!
//! A line cannot lie: values podvisor prints (paths, commands, targets, clap's own errors) may
//! hold newlines or control bytes, and a reader must never take what follows one for a line of
//! podvisor's own. The text format escapes every control character of the whole line in one
//! place (`escape`), as the JSON format already does; `show_bytes` shows bytes that are not
//! UTF-8 as `\xNN` where a raw value reaches a message.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op. With a `--log-to` copy, lines down
/// to info go to the copy whatever `level` keeps off stderr (`-q` is for the container's log;
/// the copy is for finding out what happened).
pub fn init(format: LogFormat, level: Level, copy: bool) {
    let most = if copy { level.max(Level::INFO) } else { level };
    let builder = tracing_subscriber::fmt()
        .with_writer(Lines { stderr: level })
        .with_max_level(most)
        // A log line that cannot be written (stderr a pipe whose reader is gone) is lost, and
        // that is all: by default tracing-subscriber reports it with `eprintln!`, which panics
        // on the same broken stderr, and with panic = "abort" that killed podvisor mid-step
        // (134), orphaning the step and skipping the marker.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.event_format(Text).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// `podvisor: message`, with `error:`/`warning:` in front of the message when it is one.
struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
            Level::INFO => "",
        };
        // Formatted apart first, so that the whole line passes through `escape`: this is the
        // one choke point every text line goes through.
        let mut fields = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut fields), event)?;
        write!(writer, "podvisor: {level}")?;
        escape(&fields, &mut writer)?;
        writeln!(writer)
    }
}

/// Where each line goes: stderr at `stderr` and above, and the `--log-to` copy.
struct Lines {
    stderr: Level,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Tee;

    fn make_writer(&'a self) -> Tee {
        Tee { stderr: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Tee {
        Tee {
            stderr: *meta.level() <= self.stderr,
        }
    }
}

/// stderr (unless the level keeps the line off it), and the `--log-to` copy when there is one.
/// tracing-subscriber formats a whole event and writes it with one `write_all`, so each line
/// reaches the copy whole.
struct Tee {
    stderr: bool,
}

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        crate::sidecar::logcopy::tee_own(buf);
        if self.stderr {
            std::io::stderr().write_all(buf)
        } else {
            Ok(())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Writes `text` with every character that could end or rewrite a line escaped: C0 and C1
/// controls and DEL (`\n`, `\r`, `\t`, else `\x1b` / `\u{85}`), and the Unicode line and
/// paragraph separators. Everything else, backslashes included, is written as is.
pub fn escape(text: &str, out: &mut impl fmt::Write) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if (c as u32) < 0x80 && c.is_control() => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                write!(out, "\\u{{{:x}}}", c as u32)?
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// `escape` into a new string.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = escape(text, &mut out);
    out
}

/// A raw value (a path, an argument) for a message: valid UTF-8 as it is, every byte that is
/// not as `\xNN` (not U+FFFD, which would hide which bytes they were). Control characters are
/// left to the line formatter.
pub fn show_bytes(value: &OsStr) -> String {
    let mut out = String::with_capacity(value.len());
    for chunk in value.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped("soon\nnext"), "soon\\nnext");
        assert_eq!(escaped("a\r\tb\x1b[31m\x7f"), "a\\r\\tb\\x1b[31m\\x7f");
        assert_eq!(escaped("\u{85}x\u{2028}"), "\\u{85}x\\u{2028}");
        assert_eq!(escaped("caf\u{e9} \\d+ /a b"), "caf\u{e9} \\d+ /a b");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown() {
        assert_eq!(
            show_bytes(OsStr::from_bytes(b"/tmp/\xff\xfeok")),
            "/tmp/\\xff\\xfeok"
        );
        assert_eq!(show_bytes(OsStr::new("caf\u{e9}")), "caf\u{e9}");
    }
}
