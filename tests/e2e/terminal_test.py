#!/usr/bin/env python3
"""corral run on a terminal (a pseudo-terminal of 30x100): the live table, approvals asked and
answered there, and agents' escape sequences kept off the screen.

    terminal_test.py CORRAL SRC
"""
import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time

CORRAL, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)
        if detail:
            print(detail[-3000:])


def on_terminal(argv, answer=None, cwd=None):
    """Runs argv on a pseudo-terminal; types `answer` at the first question. Returns (exit, screen
    bytes)."""
    pid, fd = pty.fork()
    if pid == 0:
        if cwd:
            os.chdir(cwd)
        os.environ["TERM"] = "xterm"
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out, asked, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        if answer is not None and not asked and b"[y/N]" in out:
            os.write(fd, answer)
            asked = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def last_frame(screen):
    """The lines of the last table drawn (after the last cursor-up-and-clear)."""
    text = screen.decode(errors="replace").replace("\r", "")
    frame = text.rsplit("\x1b[J", 1)[-1]
    lines = []
    for line in frame.split("\n"):
        if line:
            lines.append(line)
        if " tasks: " in line:  # the summary ends the table; corral's last words follow
            break
    return lines


def events(repo):
    runs = os.path.join(repo, ".git/corral/runs")
    run = sorted(os.listdir(runs))[-1]
    with open(os.path.join(runs, run, "events.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def new_repo(d):
    repo = tempfile.mkdtemp(prefix="repo-", dir=d)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    with open(os.path.join(repo, "a.txt"), "w") as f:
        f.write("a\n")
    subprocess.run(["git", "-C", repo, "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", repo, "commit", "-qm", "base"], check=True, env=env)
    return repo


def main():
    d = tempfile.mkdtemp(prefix="corral-terminal-")
    try:
        default = os.path.join(SRC, "policies/default.toml")
        approve = os.path.join(d, "approve.toml")
        with open(default) as f:
            text = f.read()
        with open(approve, "w") as f:
            f.write(text.replace("[filesystem]", "requires_human_approval = true\n\n[filesystem]", 1))
        plan = os.path.join(d, "plan.toml")
        with open(plan, "w") as f:
            f.write(f'''[[task]]
id = "slow"
policy = "{default}"
run = ["sh", "-c", "for i in 1 2 3 4; do echo step $i; sleep 0.4; done; echo done > slow.txt"]

[[task]]
id = "deploy"
policy = "{approve}"
run = ["sh", "-c", "echo deployed > deploy.txt"]

[[task]]
id = "evil"
policy = "{default}"
run = ["sh", "-c", "printf 'title\\\\033]0;pwned\\\\007 clear\\\\033[2J\\\\033[31mred\\\\n'; sleep 1.2; echo x > x.txt"]

[[task]]
id = "after"
policy = "{default}"
run = ["sh", "-c", "echo after > after.txt"]
depends_on = ["slow"]
''')
        # 1. A yes at the terminal: the task runs in the same run.
        repo = new_repo(d)
        status, screen = on_terminal([CORRAL, "run", plan, "--repo", repo], answer=b"y\n")
        frame = last_frame(screen)
        check(status == 0, "approved at the terminal, the run ends with 0", screen.decode(errors="replace"))
        check(b"needs a person's approval. Run it? [y/N]" in screen, "the question is asked")
        check(bool(frame) and frame[0].split() == ["TASK", "STATE", "ELAPSED", "TRIES", "LAST", "OUTPUT"],
              "the table has its header", "\n".join(frame))
        rows = {l.split()[0]: l.split() for l in frame[1:-1]}
        check(rows.get("slow", ["", ""])[1] == "succeeded" and rows.get("deploy", ["", ""])[1] == "succeeded"
              and rows.get("after", ["", ""])[1] == "succeeded" and rows.get("evil", ["", ""])[1] == "succeeded",
              "the last frame shows every task's final state", "\n".join(frame))
        check(frame[-1] == "4 tasks: 4 succeeded", "the summary line counts them", "\n".join(frame))
        check(b"step 2" in screen or b"step 3" in screen, "a running task's last output line is shown")
        check(b"\x1b]0;pwned" not in screen and b"\x1b[2J" not in screen and b"\x1b[31m" not in screen,
              "the agent's escape sequences never reach the terminal")
        check(b"title clearred" in screen or b"title clear" in screen,
              "the agent's text is shown without them")
        approvals = [e for e in events(repo) if e.get("type") == "approval"]
        check(len(approvals) == 1 and approvals[0].get("how") == "terminal" and approvals[0].get("task") == "deploy",
              "the approval is in the audit log, from the terminal", json.dumps(approvals))
        v = subprocess.run([CORRAL, "audit", "verify", "--repo", repo], capture_output=True, text=True)
        check(v.returncode == 0, "the audit log verifies", v.stdout + v.stderr)

        # 2. A no: the task keeps waiting, the run ends with 4, resume asks again.
        repo = new_repo(d)
        status, screen = on_terminal([CORRAL, "run", plan, "--repo", repo], answer=b"n\n")
        frame = last_frame(screen)
        rows = {l.split()[0]: l.split() for l in frame[1:-1]}
        check(status == 4, "declined at the terminal, the run ends with 4", screen.decode(errors="replace"))
        check(rows.get("deploy", ["", ""])[1] == "awaiting-approval", "the task still awaits approval",
              "\n".join(frame))
        run = sorted(os.listdir(os.path.join(repo, ".git/corral/runs")))[-1]
        status, screen = on_terminal([CORRAL, "resume", run, "--repo", repo], answer=b"yes\n")
        check(status == 0, "corral resume asks again, and a yes runs it", screen.decode(errors="replace"))

        # 3. Not a terminal: a line per state change, no table, no question.
        repo = new_repo(d)
        p = subprocess.run([CORRAL, "run", plan, "--repo", repo], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        check(p.returncode == 4 and "deploy: awaiting approval (corral approve" in p.stderr
              and "\x1b[" not in p.stderr and "[y/N]" not in p.stderr,
              "off a terminal: lines, and the approval is left to corral approve", p.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
