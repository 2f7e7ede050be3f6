#!/usr/bin/env python3
"""Load: plans of 50 and 200 tasks at -j 8 (each task writes a file; in each block of 50 tasks,
task i depends on task i-10: chains of five),
run by corral while this script samples corral's own process (not its helpers or sandboxes) in
/proc every 10 ms: its peak resident memory (VmHWM), its open descriptors and threads, and the
CPU time it used (read once it has exited, before it is reaped). Prints a table and whether the
targets hold: at most 50 MB resident at 200 tasks, and no descriptor growth from 50 to 200 tasks.

    tests/bench/load_bench.py [CORRAL] [--tasks 50,200] [--jobs 8]
"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def plan(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f'[[task]]\nid = "t{i:03d}"\npolicy = "{SRC}/policies/default.toml"\n')
            f.write(f'run = ["sh", "-c", "echo {i} > f{i}.txt"]\n')
            # Chains of five in each block of 50 tasks, so that a task's own work (the files of
            # its dependencies it checks out, the history it brings to the merge) is the same at
            # every plan size: what grows with the plan is corral's bookkeeping alone.
            if i % 50 >= 10:
                f.write(f'depends_on = ["t{i - 10:03d}"]\n')
            f.write("\n")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def measure(corral, n, jobs):
    with tempfile.TemporaryDirectory(prefix="corral-load-") as d:
        repo = os.path.join(d, "repo")
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
                   GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
        subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
        with open(os.path.join(repo, "README"), "w") as f:
            f.write("load\n")
        subprocess.run(["git", "-C", repo, "add", "README"], check=True)
        subprocess.run(["git", "-C", repo, "commit", "-qm", "base"], check=True, env=env)
        p = os.path.join(d, "plan.toml")
        plan(p, n)
        start = time.monotonic()
        proc = subprocess.Popen([corral, "run", p, "--repo", repo, "-j", str(jobs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        hwm = fds = threads = 0
        cpu_ticks = 0
        tick = os.sysconf("SC_CLK_TCK")
        while True:
            # Exited but not reaped yet: /proc still holds its final CPU time.
            done = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            try:
                hwm = max(hwm, status_kb(proc.pid, "VmHWM:"))
                threads = max(threads, status_kb(proc.pid, "Threads:"))
                if done is None:
                    fds = max(fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
                with open(f"/proc/{proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu_ticks = int(fields[11]) + int(fields[12])  # utime, stime
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
            if done is not None:
                break
            time.sleep(0.01)
        proc.wait()
        wall = time.monotonic() - start
        err = proc.stderr.read().decode(errors="replace")
        if proc.returncode != 0:
            sys.exit(f"load_bench: corral run of {n} tasks exited {proc.returncode}:\n{err[-2000:]}")
        return {"tasks": n, "wall_s": wall, "hwm_mb": hwm / 1024, "fds": fds, "threads": threads,
                "cpu_ms_per_task": cpu_ticks * 1000 / tick / n}


def main():
    args = sys.argv[1:]
    corral = os.path.abspath(args[0]) if args and not args[0].startswith("--") else \
        os.path.join(SRC, "build/launcher/corral")
    sizes, jobs = [50, 200], 8
    if "--tasks" in args:
        sizes = [int(x) for x in args[args.index("--tasks") + 1].split(",")]
    if "--jobs" in args:
        jobs = int(args[args.index("--jobs") + 1])
    # Three runs of each size: descriptors and CPU depend on how many tasks run at the moment of
    # a sample; the peak over three runs, and the median CPU per task, are steadier.
    # Interleaved (50, 200, 50, 200, ...): a shared machine's drift then weighs on both sizes.
    samples = {n: [] for n in sizes}
    for _ in range(3):
        for n in sizes:
            samples[n].append(measure(corral, n, jobs))
    rows = []
    for n in sizes:
        runs = samples[n]
        cpu = sorted(r["cpu_ms_per_task"] for r in runs)[1]
        wall = sorted(r["wall_s"] for r in runs)[1]
        rows.append({"tasks": n, "wall_s": wall, "cpu_ms_per_task": cpu,
                     "hwm_mb": max(r["hwm_mb"] for r in runs), "fds": max(r["fds"] for r in runs),
                     "threads": max(r["threads"] for r in runs)})
    who = "root" if os.geteuid() == 0 else "an unprivileged user"
    print(f"corral run at -j {jobs}, as {who}; corral's own process, sampled every 10 ms;")
    print("3 runs of each: the peaks of memory, descriptors and threads, the median wall and CPU")
    print(f"{'tasks':>6} {'wall':>8} {'peak RSS':>9} {'max fds':>8} {'threads':>8} {'CPU/task':>9}")
    for r in rows:
        print(f"{r['tasks']:>6} {r['wall_s']:>7.1f}s {r['hwm_mb']:>7.1f}MB {r['fds']:>8} "
              f"{r['threads']:>8} {r['cpu_ms_per_task']:>7.1f}ms")
    big, small = rows[-1], rows[0]
    ok_mem = big["hwm_mb"] <= 50
    # The peak follows the tasks running at the moment of a sample (at most -j, each holding a
    # few descriptors), so it varies from run to run by up to 2 per job. A descriptor leaked per
    # task would add 150 from 50 to 200 tasks.
    ok_fds = big["fds"] <= small["fds"] + 2 * jobs
    print(f"peak RSS at {big['tasks']} tasks: {big['hwm_mb']:.1f} MB (target: at most 50 MB): "
          f"{'met' if ok_mem else 'NOT MET'}")
    print(f"descriptors: {small['fds']} at {small['tasks']} tasks, {big['fds']} at {big['tasks']} "
          f"(target: no growth): {'met' if ok_fds else 'NOT MET'}")
    ok_cpu = big["cpu_ms_per_task"] <= small["cpu_ms_per_task"] * 1.2
    print(f"CPU per task: {small['cpu_ms_per_task']:.1f} ms at {small['tasks']} tasks, "
          f"{big['cpu_ms_per_task']:.1f} ms at {big['tasks']} "
          f"({big['cpu_ms_per_task'] / small['cpu_ms_per_task']:.2f}x; target: flat, at most 1.2x): "
          f"{'met' if ok_cpu else 'NOT MET'}")
    sys.exit(0 if ok_mem and ok_fds and ok_cpu else 1)


if __name__ == "__main__":
    main()
