//! Starting, checking and stopping the sandbox's processes.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How started processes relate to the starting process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Detached into their own process group: they outlive `bosun sandbox up`.
    Detached,
    /// Killed by the kernel when the starting thread exits (test harness: no leaks on panic).
    TiedToParent,
}

/// Spawn `bin args…` with output to `log`. Returns the pid.
pub fn spawn(bin: &Path, args: &[String], log: &Path, lifetime: Lifetime) -> std::io::Result<u32> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    if lifetime == Lifetime::TiedToParent {
        // SAFETY: prctl is async-signal-safe; the closure only calls it and reads errno.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn()?;
    Ok(child.id())
}

/// Whether `pid` is alive and runs an executable whose name contains `expect` (guards against
/// signalling a recycled pid).
pub fn alive(pid: u32, expect: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // a zombie is not alive
        if let Some(rest) = stat.rsplit(')').next() {
            if rest.trim_start().starts_with('Z') {
                return false;
            }
        }
    }
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(argv0).contains(expect)
}

/// Stop `pid` (if it is still the process we started): SIGTERM, then SIGKILL after `grace`.
pub fn stop(pid: u32, expect: &str, grace: Duration) {
    if !alive(pid, expect) {
        return;
    }
    let Ok(p) = i32::try_from(pid) else { return };
    // SAFETY: plain kill(2) on a pid we verified above.
    unsafe {
        libc::kill(p, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid, expect) {
            reap(p);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(p, libc::SIGKILL);
    }
    reap(p);
}

fn reap(pid: i32) {
    // reap our own child if it is one; harmless otherwise
    // SAFETY: waitpid with WNOHANG on a specific pid.
    unsafe {
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
