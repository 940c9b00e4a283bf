#!/usr/bin/env python3
"""Side by side (benchmark issue #9): bosun, HolmesGPT and the Codex CLI on the same short task,
each against a fresh `bosun scripted-model` replaying that contender's script, in the same run.

The task: "list the namespaces of the cluster and say how many there are" -- one tool call that
runs kubectl (or the contender's equivalent) against a real cluster (bosun's sandbox), then a
final answer. The scripts are in benches/compare/<contender>.script.yaml; the model's words are
a replay, the tool call runs for real, and the script's `expect` blocks check that the real
result reached the model.

For each run the harness measures, for the contender's whole process tree:
  * wall time: from just before spawning the contender to its exit (blocking wait4);
  * peak tree RSS: a sampler thread lists /proc every ~5 ms, adds every new process whose parent
    is already in the tree, and sums VmRSS (statm resident pages) over the live members; the
    peak of that sum is reported. A child that has forked but not yet exec'd (same executable
    and command line as its parent) is left out: its pages are its parent's. Pages shared
    between processes (libraries) are counted once per process, so this is an upper bound; a
    process living less than ~5 ms can be missed;
  * largest process: the highest VmHWM (the kernel's own RSS high-water mark, which sampling
    cannot miss while the process lives) read from /proc/PID/status at each sample, over the
    tree's processes; the root's own VmHWM is in the JSON as root_hwm. (wait4's ru_maxrss is
    not used: exec folds the pre-exec copy of this harness, ~23 MiB of Python, into it);
  * CPU time: user + system from wait4 (the root and its waited-for descendants), which the
    other jobs on a shared machine disturb much less than wall time.
The scripted server is not part of the measured tree.

A run counts only if the contender exited 0, printed the script's final answer, and the
scripted server answered every turn of the script with no failure; otherwise the harness stops
with the contender's output.

Codex CLI speaks only the OpenAI Responses API (`POST /v1/responses`, SSE); `wire_api = "chat"`
was removed (codex-cli 0.169.0 refuses it at config load). bosun's scripted server answers
/v1/responses with the same script and checks as /v1/chat/completions; a bosun binary too old to
have that route (checked with a GET: 404 = no route, 405 = route) gets Codex reported as
blocked. See docs/performance.md.

Stdlib only. Usage:
  scripts/bench-compare.py --bosun target/release/bosun [--runs 5] [--json out.json]
  scripts/bench-compare.py --bosun ... --install      # install HolmesGPT and Codex first
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "benches" / "compare"
TASK = "list the namespaces of the cluster and say how many there are"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bosun" / "compare"
HOLMES_VERSION = "0.45.0"
CODEX_VERSION = "0.169.0"
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.005
RUN_TIMEOUT_S = 180
NO_RESPONSES = ("this bosun's scripted server has no POST /v1/responses (Codex speaks only the "
                "Responses API); use a bosun built from a revision that serves it")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# contenders


def holmes_paths(cache: Path) -> dict:
    venv = cache / "holmes"
    return {"venv": venv, "bin": venv / "bin" / "holmes", "home": cache / "holmes-home"}


def codex_paths(cache: Path) -> dict:
    prefix = cache / "codex"
    native = sorted(glob.glob(str(prefix / "node_modules/@openai/codex-*/vendor/*/bin/codex")))
    return {
        "prefix": prefix,
        "npm": prefix / "node_modules" / ".bin" / "codex",
        "native": Path(native[0]) if native else None,
        "home": cache / "codex-home",
        "user_home": cache / "codex-user-home",
    }


def install_hint(name: str, cache: Path) -> str:
    if name == "holmes":
        v = holmes_paths(cache)["venv"]
        return f"python3.11 -m venv {v} && {v}/bin/pip install holmesgpt=={HOLMES_VERSION}"
    if name.startswith("codex"):
        p = codex_paths(cache)["prefix"]
        return f"npm install --prefix {p} @openai/codex@{CODEX_VERSION}"
    return ""


def install(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    h = holmes_paths(cache)
    if not h["bin"].exists():
        log(f"installing HolmesGPT {HOLMES_VERSION} into {h['venv']}")
        subprocess.run([sys.executable, "-m", "venv", str(h["venv"])], check=True)
        subprocess.run(
            [str(h["venv"] / "bin" / "pip"), "install", "-q", f"holmesgpt=={HOLMES_VERSION}"],
            check=True,
        )
    c = codex_paths(cache)
    if not c["npm"].exists() or c["native"] is None:
        log(f"installing @openai/codex {CODEX_VERSION} into {c['prefix']}")
        c["prefix"].mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(c["prefix"]), f"@openai/codex@{CODEX_VERSION}"],
            check=True,
        )


def version_of(cmd: list[str], env: dict | None = None) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
        return lines[-1].strip() if lines else "?"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"


class Contender:
    """One agent: how to run it against a base URL, and whether it is installed."""

    def __init__(self, name, script, wire, installed, missing, version, build):
        self.name = name
        self.script = script  # Path of the scripted-model script
        self.wire = wire  # "chat" or "responses"
        self.installed = installed
        self.missing = missing  # why not installed / how to install
        self.version = version
        self.build = build  # (base_url, workdir) -> (argv, env)


def contenders(args, kubeconfig: str) -> list[Contender]:
    cache = Path(args.cache)
    base_env = dict(os.environ, KUBECONFIG=kubeconfig)
    out = []

    bosun = str(Path(args.bosun).resolve())

    def bosun_cmd(url, work):
        argv = [bosun, "--agent", str(REPO), "run", "--base-url", url, "--api-key", "dummy",
                "--model", "scripted", "-q", "--audit-dir", f"{work}/audit",
                "--sessions-dir", f"{work}/sessions", TASK]
        return argv, dict(base_env)

    out.append(Contender("bosun", SCRIPTS / "bosun.script.yaml", "chat", True, "",
                         version_of([bosun, "--version"]), bosun_cmd))

    h = holmes_paths(cache)

    def holmes_cmd(url, work):
        env = dict(base_env, OPENAI_API_BASE=url, OPENAI_API_KEY="dummy",
                   LITELLM_LOCAL_MODEL_COST_MAP="True", HOME=str(h["home"]), COLUMNS="200")
        argv = [str(h["bin"]), "ask", "--no-interactive", "--config",
                str(SCRIPTS / "holmes-config.yaml"), "--model", "openai/scripted", TASK]
        return argv, env

    ok = h["bin"].exists()
    ver = ""
    if ok:
        h["home"].mkdir(parents=True, exist_ok=True)
        ver = "holmesgpt " + version_of(
            [str(h["venv"] / "bin" / "python"), "-c",
             "import importlib.metadata as m; print(m.version('holmesgpt'))"])
    out.append(Contender("holmes", SCRIPTS / "holmes.script.yaml", "chat", ok,
                         "" if ok else "not installed: " + install_hint("holmes", cache), ver,
                         holmes_cmd))

    c = codex_paths(cache)

    def codex_cmd(binary):
        def build(url, work):
            # HOME: an empty directory, so that the login shell Codex runs commands in does not
            # source this machine's ~/.bashrc (pyenv's init here: a dozen extra processes)
            env = dict(base_env, CODEX_HOME=str(c["home"]), HOME=str(c["user_home"]),
                       OPENAI_API_KEY="dummy")
            provider = (f'model_providers.scripted={{name="scripted", base_url="{url}", '
                        f'wire_api="responses", env_key="OPENAI_API_KEY", '
                        f'request_max_retries=0, stream_max_retries=0}}')
            argv = [str(binary), "exec", "--skip-git-repo-check", "-s", "danger-full-access",
                    "-C", work, "-c", "model_provider=scripted", "-c", provider,
                    "-m", "scripted", TASK]
            return argv, env
        return build

    for name, binary in (("codex", c["native"]), ("codex-npm", c["npm"])):
        ok = binary is not None and Path(binary).exists() and shutil.which("node") is not None
        ver = ""
        if ok:
            c["home"].mkdir(parents=True, exist_ok=True)
            c["user_home"].mkdir(parents=True, exist_ok=True)
            ver = version_of([str(binary), "--version"])
        missing = "" if ok else "not installed: " + install_hint(name, cache)
        out.append(Contender(name, SCRIPTS / "codex.script.yaml", "responses", ok, missing, ver,
                             codex_cmd(binary) if ok else None))
    return out


# ---------------------------------------------------------------------------------------------
# the scripted server


class Scripted:
    """A fresh `bosun scripted-model` for one run."""

    def __init__(self, bosun: str, script: Path):
        self.proc = subprocess.Popen(
            [bosun, "scripted-model", "--script", str(script), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(REPO))
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"scripted-model did not print its URL (got {line!r})")
        self.base_url = line  # http://127.0.0.1:PORT/v1
        self.root = line[: -len("/v1")]
        self.turns = len(re.findall(r"^\s*- (expect|reply|raw):", script.read_text(), re.M))

    def get(self, path: str):
        with urllib.request.urlopen(self.root + path, timeout=10) as r:
            return json.loads(r.read())

    def serves_responses(self) -> bool:
        """GET on a POST-only route is 405; an unknown route is 404. Consumes no turn."""
        try:
            urllib.request.urlopen(self.base_url + "/responses", timeout=10)
            return True
        except urllib.error.HTTPError as e:
            return e.code != 404

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------
# measuring a process tree


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
        return int(s[s.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _exe_and_cmdline(pid: int):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.readlink(f"/proc/{pid}/exe"), f.read()
    except OSError:
        return None


def _unexeced_fork(pid: int) -> bool:
    """Same executable and command line as its parent: forked, not yet exec'd."""
    me = _exe_and_cmdline(pid)
    parent = _ppid(pid)
    return me is not None and parent is not None and me == _exe_and_cmdline(parent)


def _name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return "?"


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.tree = {root}
        self.seen: set[int] = set()
        self.peak = 0
        self.root_hwm = 0
        self.largest = 0
        self.largest_name = ""
        self.samples = 0
        self.procs = 0
        self.execd: set[int] = set()
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            live = set()
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                pid = int(name)
                live.add(pid)
                if pid in self.seen:
                    continue
                self.seen.add(pid)
                if pid != self.root and _ppid(pid) in self.tree:
                    self.tree.add(pid)
            self.tree &= live | {self.root}
            self.seen &= live
            self.execd &= live
            # between fork and exec a child is a copy of its parent whose pages are the
            # parent's (copy-on-write, or the very same with vfork): not counted until it execs
            counted = [p for p in self.tree if p in self.execd or not _unexeced_fork(p)]
            self.execd.update(counted)
            if self.root in counted:
                total = sum(_rss(p) for p in counted)
                self.peak = max(self.peak, total)
                for p in counted:
                    hwm = _hwm(p)
                    if hwm > self.largest:
                        self.largest, self.largest_name = hwm, _name(p)
                    if p == self.root:
                        self.root_hwm = max(self.root_hwm, hwm)
                self.procs = max(self.procs, len(self.tree))
                self.samples += 1
            self.stop_flag.wait(SAMPLE_S)


def measure(argv, env, cwd, out_path: Path, err_path: Path) -> dict:
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(RUN_TIMEOUT_S, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop_flag.set()
        sampler.join()
    try:  # whatever the contender left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return {"exit": proc.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_tree_rss": sampler.peak, "max_single_rss": sampler.largest,
            "largest_process": sampler.largest_name, "root_hwm": sampler.root_hwm,
            "processes": sampler.procs, "samples": sampler.samples}


# ---------------------------------------------------------------------------------------------


def expected_answer(script: Path) -> str:
    """The final reply's content (the last `content:` line of the script)."""
    found = re.findall(r'content:\s*"([^"]+)"', script.read_text())
    return found[-1] if found else ""


def norm(s: str) -> str:
    return " ".join(s.split())


def one_run(args, c: Contender, work: Path, i: int) -> dict:
    server = Scripted(args.bosun, c.script)
    try:
        url = server.base_url
        run_dir = work / f"{c.name}-{i}"
        run_dir.mkdir(parents=True, exist_ok=True)
        argv, env = c.build(url, str(run_dir))
        m = measure(argv, env, str(run_dir), run_dir / "stdout", run_dir / "stderr")
        reqs = server.get("/_scripted/requests")
        fails = server.get("/_scripted/failures")
        stdout = (run_dir / "stdout").read_text(errors="replace")
        answer = expected_answer(c.script)
        problems = []
        if m["exit"] != 0:
            problems.append(f"exit {m['exit']}")
        if fails:
            problems.append(f"scripted server failures: {fails}")
        if len(reqs) != server.turns:
            problems.append(f"the server answered {len(reqs)} of {server.turns} turns")
        if answer and norm(answer) not in norm(stdout):
            problems.append("the final answer is not on stdout")
        if problems:
            err = (run_dir / "stderr").read_text(errors="replace")
            raise RuntimeError(f"{c.name} run {i}: " + "; ".join(problems)
                               + f"\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{err[-3000:]}")
        m["via"] = "scripted-model"
        m["turns"] = len(reqs)
        return m
    finally:
        server.stop()


def start_sandbox(bosun: str, d: str) -> str:
    log(f"starting the sandbox in {d}")
    subprocess.run([bosun, "sandbox", "up", "--dir", d], check=True, stdout=subprocess.DEVNULL)
    return str(Path(d) / "kubeconfig")


def mib(b: float) -> str:
    return f"{b / 1048576:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bosun", required=True, help="the bosun binary (release build for figures)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per contender (default 5)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured runs first (page cache, HolmesGPT's toolset cache)")
    ap.add_argument("--kubeconfig", help="use this cluster instead of starting a sandbox")
    ap.add_argument("--only", help="comma-separated contenders (bosun,holmes,codex,codex-npm)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--cache", default=str(CACHE), help=f"install dir (default {CACHE})")
    ap.add_argument("--install", action="store_true", help="install HolmesGPT and Codex first")
    args = ap.parse_args()
    args.bosun = str(Path(args.bosun).resolve())

    if args.install:
        install(Path(args.cache))

    sandbox_dir = None
    if args.kubeconfig:
        kubeconfig = str(Path(args.kubeconfig).resolve())
    else:
        sandbox_dir = tempfile.mkdtemp(prefix="bosun-cmp-sandbox-")
        kubeconfig = start_sandbox(args.bosun, sandbox_dir)
    work = Path(tempfile.mkdtemp(prefix="bosun-cmp-"))
    results = {"task": TASK, "runs": args.runs, "warmup": args.warmup,
               "machine": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg()},
               "method": "wall: spawn to wait4; cpu: wait4 utime+stime; peak_tree_rss: sum of "
                         "VmRSS over the process tree (forked-not-exec'd children left out) "
                         "sampled every 5 ms from /proc; max_single_rss: the highest VmHWM "
                         "of a process of the tree, sampled likewise",
               "contenders": {}}
    try:
        wanted = set(args.only.split(",")) if args.only else None
        active, runs = [], {}
        for c in contenders(args, kubeconfig):
            if wanted and c.name not in wanted:
                continue
            entry = {"version": c.version, "script": str(c.script.relative_to(REPO))}
            results["contenders"][c.name] = entry
            if not c.installed:
                entry["status"] = c.missing
                log(f"{c.name}: {c.missing}")
                continue
            if c.wire == "responses":
                server = Scripted(args.bosun, c.script)
                served = server.serves_responses()
                server.stop()
                if not served:
                    entry["status"] = f"blocked: {NO_RESPONSES}"
                    log(f"{c.name}: blocked: {NO_RESPONSES}")
                    continue
            for i in range(args.warmup):
                log(f"{c.name}: warm-up {i + 1}/{args.warmup}")
                one_run(args, c, work, -(i + 1))
            active.append(c)
            runs[c.name] = []
        # round-robin, so that every contender meets the same share of whatever else the
        # machine is doing during the run
        for i in range(args.runs):
            for c in active:
                m = one_run(args, c, work, i + 1)
                log(f"{c.name}: run {i + 1}/{args.runs}: {m['wall_s'] * 1000:.0f} ms, "
                    f"cpu {m['cpu_s'] * 1000:.0f} ms, "
                    f"tree {mib(m['peak_tree_rss'])} MiB, "
                    f"largest {m['largest_process']} {mib(m['max_single_rss'])} MiB, "
                    f"{m['processes']} processes")
                runs[c.name].append(m)
        for c in active:
            entry, rs = results["contenders"][c.name], runs[c.name]
            entry["status"] = "ok"
            entry["via"] = rs[0]["via"]
            entry["runs_detail"] = rs
            for k in ("wall_s", "cpu_s", "peak_tree_rss", "max_single_rss"):
                entry["median_" + k] = statistics.median(r[k] for r in rs)
            entry["max_processes"] = max(r["processes"] for r in rs)
            entry["min_wall_s"] = min(r["wall_s"] for r in rs)
    finally:
        if sandbox_dir:
            subprocess.run([args.bosun, "sandbox", "down", "--dir", sandbox_dir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(sandbox_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()

    cs = results["contenders"]
    base = cs.get("bosun", {})
    print(f"task: {TASK!r}; {args.runs} runs each (medians); "
          f"load average {results['machine']['loadavg_start'][0]:.2f} -> "
          f"{results['machine']['loadavg_end'][0]:.2f} on {os.cpu_count()} cores")
    keys = ("wall_s", "cpu_s", "peak_tree_rss", "max_single_rss")
    print(f"{'contender':<11} {'version':<20} {'wall ms':>8} {'(min)':>7} {'cpu ms':>7} {'tree MiB':>9} "
          f"{'1 proc MiB':>10} {'wall x':>7} {'cpu x':>6} {'tree x':>7} {'1 proc x':>8}")
    for name, e in cs.items():
        if e["status"] != "ok":
            print(f"{name:<11} {e['version'][:20]:<20} {e['status']}")
            continue
        ratios = ["", "", "", ""]
        if base.get("status") == "ok":
            for j, k in enumerate(keys):
                e["ratio_" + k] = e["median_" + k] / base["median_" + k]
                ratios[j] = f"{e['ratio_' + k]:.1f}"
        print(f"{name:<11} {e['version'][:20]:<20} {e['median_wall_s'] * 1000:>8.0f} "
              f"{e['min_wall_s'] * 1000:>7.0f} "
              f"{e['median_cpu_s'] * 1000:>7.0f} "
              f"{mib(e['median_peak_tree_rss']):>9} {mib(e['median_max_single_rss']):>10} "
              f"{ratios[0]:>7} {ratios[1]:>6} {ratios[2]:>7} {ratios[3]:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
