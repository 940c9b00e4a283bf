//! `bosun chat`: the REPL, a thin frontend over a [`SessionHandle`]. Streamed assistant text, a
//! spinner per tool call, approval prompts with the change's details, slash commands, Ctrl-C to
//! interrupt the running turn (the session stays), Ctrl-D to leave.

use super::exit;
use super::render::{one_line, Palette};
use super::run::{self, RunArgs};
use bosun::guard::Verdict;
use bosun::planner::State;
use bosun::session::{Event, Op, Runtime, SessionHandle};
use bosun::term::printable;
use indicatif::{ProgressBar, ProgressStyle};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const HELP: &str = "\
commands:
  /help              this help
  /state             the planner state and session id
  /plan              the planner's states and where the task can go next
  /tools             the tools and operations offered, with effect classes
  /skills            the agent's skills
  /approve, /deny    answer a pending approval request
  /save              where this session is saved (it is saved as you go)
  /resume ID         continue a saved session (`bosun sessions list`)
  /model [NAME]      show the model, or switch to NAME (the conversation is kept)
  /quit              leave (or Ctrl-D)
A line ending with \\ continues on the next line. Ctrl-C interrupts the running turn.";

/// Blocking readline on the editor, off the async threads.
async fn readline(
    mut ed: DefaultEditor,
    prompt: String,
) -> anyhow::Result<(DefaultEditor, Result<String, ReadlineError>)> {
    tokio::task::spawn_blocking(move || {
        let r = ed.readline(&prompt);
        (ed, r)
    })
    .await
    .map_err(|e| anyhow::anyhow!("the line editor failed: {e}"))
}

/// Read one input, joining lines that end with a backslash.
async fn read_input(
    mut ed: DefaultEditor,
    prompt: &str,
) -> anyhow::Result<(DefaultEditor, Result<String, ReadlineError>)> {
    let mut text = String::new();
    let mut p = prompt.to_string();
    loop {
        let (e, r) = readline(ed, p.clone()).await?;
        ed = e;
        match r {
            Ok(line) => {
                if let Some(stripped) = line.strip_suffix('\\') {
                    text.push_str(stripped);
                    text.push('\n');
                    p = "… ".into();
                    continue;
                }
                text.push_str(&line);
                return Ok((ed, Ok(text)));
            }
            Err(e) => return Ok((ed, Err(e))),
        }
    }
}

struct Ui {
    state: State,
    spinner: Option<ProgressBar>,
    streamed: bool,
}

impl Ui {
    /// A finished spinner leaves no line behind (a dropped `ProgressBar` would stay on screen).
    fn clear_spinner(&mut self) {
        if let Some(sp) = self.spinner.take() {
            sp.finish_and_clear();
        }
    }
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(80));
    pb.set_message(msg);
    pb
}

pub async fn chat(dir: &Path, mut args: RunArgs) -> anyhow::Result<ExitCode> {
    args.stream = true;
    let mut rt: Arc<Runtime> = match run::build_runtime(dir, &args).await {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    if let Err(e) = run::preflight(&rt, &args).await {
        eprintln!("bosun: {e:#}");
        return Ok(ExitCode::from(exit::USAGE));
    }
    let interactive = args.approve.is_empty() && !args.yes && !args.skip_permissions;
    let approver = if interactive {
        None
    } else {
        Some(run::approver(&args)?)
    };
    let mut handle: SessionHandle = rt.spawn(approver.clone(), args.resume.as_deref())?;
    let history = run::state_dir("history");
    let mut ed =
        DefaultEditor::new().map_err(|e| anyhow::anyhow!("cannot set up the line editor: {e}"))?;
    let _ = ed.load_history(&history);
    eprintln!(
        "bosun chat — agent {}, model {}, session {}. /help for commands, Ctrl-D to leave.",
        rt.agent.def.id,
        rt.model.model_name(),
        handle.id()
    );
    if let Some(line) = run::scope_line(&rt) {
        eprintln!("{line}");
    }
    // colours on a terminal, honouring NO_COLOR; none in pipes
    let pal = Palette::stderr();
    let mut ui = Ui {
        // a resumed session continues in its restored planner state
        state: handle.started_in(),
        spinner: None,
        streamed: false,
    };
    let mut pending_first = {
        let t = args.task.join(" ");
        (!t.trim().is_empty()).then_some(t)
    };
    loop {
        let input = match pending_first.take() {
            Some(t) => t,
            None => {
                let prompt = format!("{}{}{}>{} ", pal.bold, pal.cyan, ui.state, pal.reset);
                let (e, r) = read_input(ed, &prompt).await?;
                ed = e;
                match r {
                    Ok(t) => t,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => break,
                    Err(e) => {
                        eprintln!("bosun: input error: {e}");
                        break;
                    }
                }
            }
        };
        let text = input.trim();
        if text.is_empty() {
            continue;
        }
        let _ = ed.add_history_entry(text);
        if let Some(cmd) = text.strip_prefix('/') {
            let mut parts = cmd.splitn(2, ' ');
            let name = parts.next().unwrap_or("");
            let arg = parts.next().map(str::trim).filter(|a| !a.is_empty());
            match name {
                "help" | "h" | "?" => println!("{HELP}"),
                "quit" | "q" | "exit" => break,
                "state" => println!("state: {} · session {}", ui.state, handle.id()),
                "plan" => {
                    let next: Vec<&str> =
                        ui.state.successors().iter().map(|s| s.as_str()).collect();
                    println!("intake → coding → validation → deployment → verification → completion (or failed)");
                    println!(
                        "now: {}; next: {}",
                        ui.state,
                        if next.is_empty() {
                            "—".into()
                        } else {
                            next.join(", ")
                        }
                    );
                }
                "tools" => {
                    for name in rt.registry.names() {
                        if let Some(r) = rt.registry.get(name) {
                            let ops: Vec<String> = r
                                .operations
                                .iter()
                                .map(|(o, e)| format!("{o} ({e})"))
                                .collect();
                            println!("{name}: {}", ops.join(", "));
                        }
                    }
                }
                "skills" => {
                    for s in &rt.agent.skills {
                        println!("{}: {}", s.name, one_line(&s.description, 110));
                    }
                }
                "save" => println!(
                    "session {} is saved as you go in {}",
                    handle.id(),
                    args.sessions_dir
                        .clone()
                        .unwrap_or_else(|| run::state_dir("sessions"))
                        .display()
                ),
                "approve" | "deny" => println!("no approval is pending"),
                "resume" => match arg {
                    None => println!("usage: /resume ID (see `bosun sessions list`)"),
                    Some(id) => match rt.spawn(approver.clone(), Some(id)) {
                        Ok(h) => {
                            handle.submit(Op::Shutdown);
                            handle = h;
                            ui.state = handle.started_in();
                            println!("resumed session {id} (planner state {})", ui.state);
                        }
                        Err(e) => println!("cannot resume {id}: {e}"),
                    },
                },
                "model" => match arg {
                    None => println!("model: {}", rt.model.model_name()),
                    Some(m) => {
                        let a2 = RunArgs {
                            model: Some(m.to_string()),
                            resume: None,
                            task: vec![],
                            ..args.clone()
                        };
                        match run::build_runtime(dir, &a2).await {
                            Ok(new_rt) => {
                                let id = handle.id().to_string();
                                handle.submit(Op::Shutdown);
                                match new_rt.spawn(approver.clone(), Some(&id)) {
                                    Ok(h) => {
                                        handle = h;
                                        ui.state = handle.started_in();
                                        rt = new_rt;
                                        println!("model: {m} (session {id} continues)");
                                    }
                                    Err(e) => println!("cannot switch: {e}"),
                                }
                            }
                            Err(e) => println!("cannot switch: {e:#}"),
                        }
                    }
                },
                other => println!("unknown command /{other}; /help lists them"),
            }
            continue;
        }
        handle.submit(Op::UserTurn {
            text: text.to_string(),
        });
        // pump events until the turn ends; Ctrl-C interrupts
        loop {
            let ev = tokio::select! {
                e = handle.next_event() => e,
                _ = tokio::signal::ctrl_c() => {
                    if let Some(sp) = ui.spinner.take() { sp.finish_and_clear(); }
                    eprintln!("\n^C — interrupting (the session stays)");
                    handle.submit(Op::Interrupt);
                    continue;
                }
            };
            let Some(ev) = ev else {
                eprintln!("the session ended");
                return Ok(ExitCode::from(exit::TASK_FAILED));
            };
            match ev {
                Event::AssistantDelta { text } => {
                    ui.streamed = true;
                    print!("{}", printable(&text));
                    let _ = std::io::stdout().flush();
                }
                Event::AssistantMessage { text } => {
                    if ui.streamed {
                        println!();
                        ui.streamed = false;
                    } else {
                        println!("{}", printable(&text));
                    }
                }
                Event::ToolCallStarted {
                    tool, arguments, ..
                } => {
                    ui.clear_spinner();
                    ui.spinner = Some(spinner(format!(
                        "{}{tool}{} {}",
                        pal.bold,
                        pal.reset,
                        one_line(&arguments, 70)
                    )));
                }
                Event::GuardDecision(d) if d.verdict == Verdict::Refuse => {
                    let line = format!(
                        "  {}✗ guard:{} {}",
                        pal.red,
                        pal.reset,
                        one_line(&d.reason, 150)
                    );
                    match &ui.spinner {
                        Some(sp) if !sp.is_hidden() => sp.println(line),
                        _ => eprintln!("{line}"),
                    }
                }
                Event::ToolCallFinished {
                    tool,
                    ok,
                    output,
                    duration_ms,
                    ..
                } => {
                    let line = format!(
                        "{} {}{tool}{} · {duration_ms} ms · {}",
                        if ok {
                            format!("{}✓{}", pal.green, pal.reset)
                        } else {
                            format!("{}✗{}", pal.red, pal.reset)
                        },
                        pal.bold,
                        pal.reset,
                        one_line(&output, 90)
                    );
                    match ui.spinner.take() {
                        Some(sp) => {
                            sp.finish_and_clear();
                            eprintln!("{line}");
                        }
                        None => eprintln!("{line}"),
                    }
                }
                Event::StateChanged {
                    from,
                    to,
                    justification,
                } => {
                    ui.state = to;
                    eprintln!(
                        "{}◆ {from} → {to}:{} {}",
                        pal.cyan,
                        pal.reset,
                        one_line(&justification, 100)
                    );
                }
                Event::ApprovalRequested { id, request } => {
                    if let Some(sp) = ui.spinner.take() {
                        sp.finish_and_clear();
                    }
                    eprintln!(
                        "\n{}⚠ approval needed:{} {} — {}{}.{}{} ({})",
                        pal.yellow,
                        pal.reset,
                        request.reason,
                        pal.bold,
                        request.tool,
                        request.operation,
                        pal.reset,
                        request.effect
                    );
                    eprintln!("  target: {}", request.target);
                    if let Some(env) = request.environment {
                        eprintln!("  environment: {env}");
                    }
                    eprintln!("  change: {}", request.fingerprint);
                    for line in approval_details(&request).lines() {
                        eprintln!("  {line}");
                    }
                    let (e, r) = readline(ed, "approve? [y/N] ".into()).await?;
                    ed = e;
                    let yes = matches!(
                        r.as_deref().map(str::trim),
                        Ok("y" | "Y" | "yes" | "/approve")
                    );
                    handle.submit(if yes {
                        Op::Approve { id }
                    } else {
                        Op::Deny {
                            id,
                            reason: "the user said no".into(),
                        }
                    });
                    ui.spinner = Some(spinner(format!("{} {}", request.tool, request.operation)));
                }
                Event::TaskComplete { proposal, .. } => {
                    // the answer was shown as the last assistant message
                    ui.clear_spinner();
                    if let Some(p) = proposal {
                        eprintln!(
                            "◇ proposal: {} change(s) in {} — `bosun apply {}` applies it",
                            p.changes,
                            p.dir.display(),
                            p.dir.display()
                        );
                    }
                    ui.streamed = false;
                    break;
                }
                Event::TaskFailed { error } => {
                    ui.clear_spinner();
                    eprintln!("{}✗{} {}", pal.red, pal.reset, printable(&error));
                    break;
                }
                Event::TaskInterrupted => {
                    ui.clear_spinner();
                    eprintln!("interrupted; the conversation is kept");
                    break;
                }
                _ => {}
            }
        }
    }
    handle.submit(Op::Shutdown);
    if let Some(parent) = history.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = ed.save_history(&history);
    eprintln!(
        "session {} saved; continue it with: bosun chat --resume {}",
        handle.id(),
        handle.id()
    );
    Ok(ExitCode::from(exit::SUCCESS))
}

/// What an approval prompt shows below its header: the dry-run's diff of exactly this change
/// (terminal-safe), else the objects it touches.
pub fn approval_details(req: &bosun::guard::ApprovalRequest) -> String {
    match &req.diff {
        Some(d) => format!(
            "what will change (the dry-run of this change):\n{}",
            bosun::term::printable(d)
        ),
        None if !req.objects.is_empty() => format!(
            "objects: {}",
            req.objects
                .iter()
                .map(|o| format!(
                    "{} {}{}",
                    o.kind,
                    o.namespace
                        .as_deref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default(),
                    o.name
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "no dry-run result recorded for this change".into(),
    }
}
