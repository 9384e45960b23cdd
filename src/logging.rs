//! podvisor's own log lines on stderr: `podvisor: ...` text, or one JSON object per line.

use std::fmt;

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
        write!(writer, "podvisor: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
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
