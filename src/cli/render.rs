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

/// ANSI styles — every one empty when colour is off, so plain output has no escape byte.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub dim: &'static str,
    pub bold: &'static str,
    pub red: &'static str,
    pub green: &'static str,
    pub yellow: &'static str,
    pub cyan: &'static str,
    pub reset: &'static str,
}

impl Palette {
    /// Colours when `on`, else none.
    pub fn new(on: bool) -> Self {
        if on {
            Self {
                dim: "\x1b[2m",
                bold: "\x1b[1m",
                red: "\x1b[31m",
                green: "\x1b[32m",
                yellow: "\x1b[33m",
                cyan: "\x1b[36m",
                reset: "\x1b[0m",
            }
        } else {
            Self {
                dim: "",
                bold: "",
                red: "",
                green: "",
                yellow: "",
                cyan: "",
                reset: "",
            }
        }
    }

    /// Colours as [`color`] decides for stderr.
    pub fn stderr() -> Self {
        Self::new(color())
    }
}

/// The line `run` shows on a terminal while the model thinks — elapsed seconds and tokens
/// streamed so far — cleared (never left on screen) when something else is printed.
struct Thinking {
    bar: Option<indicatif::ProgressBar>,
    /// Streamed chunks of this model turn (one per token, as endpoints stream them).
    tokens: u64,
    /// When the model was asked.
    since: std::time::Instant,
}

impl Thinking {
    /// A new line for a new model request.
    fn show(&mut self) {
        self.tokens = 0;
        self.since = std::time::Instant::now();
        self.hide();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.bar = Some(bar);
        self.update();
    }

    fn update(&self) {
        if let Some(bar) = &self.bar {
            let secs = self.since.elapsed().as_secs();
            bar.set_message(match self.tokens {
                0 => format!("model thinking · {secs} s"),
                n => format!("model thinking · {secs} s · {n} tokens streamed"),
            });
        }
    }

    fn hide(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
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
    let Palette {
        dim,
        bold,
        red,
        green,
        reset,
        ..
    } = Palette::stderr();
    let mut streamed = false;
    // the progress line: text output on a terminal only (never in pipes, logs or JSON)
    let live = !quiet && format == OutputFormat::Text && std::io::stderr().is_terminal();
    let mut thinking = Thinking {
        bar: None,
        tokens: 0,
        since: std::time::Instant::now(),
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = tick.tick() => {
                thinking.update();
                continue;
            }
        };
        let Some(ev) = ev else { break };
        // on a terminal the line stands for the streamed text while the model thinks (the
        // text is printed whole when complete); before anything is printed it is cleared
        let think_after = live
            && matches!(
                ev,
                Event::TaskStarted { .. } | Event::ToolCallFinished { .. }
            );
        if live {
            if let Event::AssistantDelta { .. } = ev {
                thinking.tokens += 1;
                thinking.update();
            } else {
                thinking.hide();
            }
        }
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
                if !live {
                    eprint!("{dim}{}{reset}", printable(&text));
                }
            }
            // the final answer goes to stdout on TaskComplete; interim text is progress
            Event::AssistantMessage { text } if !quiet && streamed => {
                if live {
                    eprint!("{dim}{}{reset}", printable(&text));
                }
                eprintln!();
                streamed = false;
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
        if think_after {
            thinking.show();
        }
    }
    thinking.hide();
}
