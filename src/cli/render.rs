//! Rendering session events at the terminal (text), or as JSON lines.

use super::OutputFormat;
use bosun::guard::Verdict;
use bosun::session::Event;
use bosun::term::printable;
use std::io::{IsTerminal, Write};
use tokio::sync::mpsc::UnboundedReceiver;

/// Whether stderr gets colours: a terminal, and `NO_COLOR` unset or empty (no-color.org).
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `s` on one line of at most `max` characters, control characters escaped.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = printable(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > max {
        let mut t: String = flat.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        flat
    }
}

/// Consume events until the channel closes.
pub async fn render(
    mut rx: UnboundedReceiver<Event>,
    format: OutputFormat,
    quiet: bool,
    mut trace: Option<std::fs::File>,
) {
    let color = color();
    let (dim, bold, red, green, reset) = if color {
        ("\x1b[2m", "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[0m")
    } else {
        ("", "", "", "", "")
    };
    let mut streamed = false;
    while let Some(ev) = rx.recv().await {
        if let Some(f) = trace.as_mut() {
            if let Ok(line) = serde_json::to_string(&ev) {
                if writeln!(f, "{line}").is_err() {
                    eprintln!("bosun: cannot write the trace file; tracing stops");
                    trace = None;
                }
            }
        }
        if format == OutputFormat::Jsonl {
            if let Ok(line) = serde_json::to_string(&ev) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            continue;
        }
        if format == OutputFormat::Json {
            continue;
        }
        match ev {
            Event::TaskStarted { model, .. } if !quiet => {
                eprintln!("{dim}model {model}{reset}");
            }
            Event::AssistantDelta { text } if !quiet => {
                streamed = true;
                eprint!("{dim}{}{reset}", printable(&text));
            }
            Event::AssistantMessage { text } if !quiet => {
                if streamed {
                    eprintln!();
                    streamed = false;
                }
                // the final answer goes to stdout on TaskComplete; interim text is progress
                let _ = text;
            }
            Event::ToolCallStarted {
                tool, arguments, ..
            } if !quiet => {
                eprintln!(
                    "{bold}→ {tool}{reset} {dim}{}{reset}",
                    one_line(&arguments, 100)
                );
            }
            Event::GuardDecision(d)
                if !quiet && d.refusal == Some(bosun::guard::RefusalKind::Proposed) =>
            {
                eprintln!(
                    "  ◇ proposed, not applied (suggest mode): change {}",
                    d.fingerprint.as_deref().unwrap_or("?")
                );
            }
            Event::GuardDecision(d) if !quiet && d.verdict == Verdict::Refuse => {
                eprintln!(
                    "  {red}✗ guard refused:{reset} {}",
                    one_line(&d.reason, 160)
                );
            }
            Event::ToolCallFinished {
                ok,
                output,
                duration_ms,
                ..
            } if !quiet => {
                let mark = if ok {
                    format!("{green}✓{reset}")
                } else {
                    format!("{red}✗{reset}")
                };
                eprintln!(
                    "  {mark} {dim}{duration_ms} ms · {}{reset}",
                    one_line(&output, 100)
                );
            }
            Event::TaskComplete {
                answer,
                turns,
                tool_calls,
                usage,
                state,
                ..
            } => {
                if !quiet {
                    eprintln!(
                        "{dim}done in {turns} turn(s), {tool_calls} tool call(s), {} prompt + {} completion tokens; planner state {state}{reset}",
                        usage.prompt_tokens, usage.completion_tokens
                    );
                }
                // the model's words, from the endpoint: shown, never interpreted by the terminal
                println!("{}", printable(&answer));
            }
            _ => {}
        }
    }
}
