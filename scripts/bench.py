#!/usr/bin/env python3
"""Timing and peak memory for scripts/bench.sh, which compares cargo-ebpf with a peer doing
the same work in the same run.

  bench.py run OUT NAME RUNS [--prepare CMD] -- CMD...
      runs CMD RUNS times (after one untimed warm-up run), each after PREPARE (untimed,
      through sh -c); `{i}` in CMD and PREPARE becomes the run number, for runs that need
      a fresh target. Appends one JSON line per run to OUT: wall seconds and the
      command's peak resident memory (ru_maxrss of the child, from wait4). A failing run
      stops the benchmark: a figure of a failed command means nothing.
  bench.py table OUT OURS PEER [OURS PEER ...]
      prints min and median of wall time and peak RSS of each command, and the ratios
      ours / peer (median and min; below 1 means cargo-ebpf is faster).
"""

import json
import os
import statistics
import subprocess
import sys
import time


def run_once(argv, i):
    argv = [a.replace("{i}", str(i)) for a in argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} failed (exit {proc.returncode}):\n{err}")
    return wall, usage.ru_maxrss / 1024


def cmd_run(args):
    out, name, runs = args[0], args[1], int(args[2])
    rest = args[3:]
    prepare = None
    if rest[0] == "--prepare":
        prepare, rest = rest[1], rest[2:]
    assert rest[0] == "--", "usage: bench.py run OUT NAME RUNS [--prepare CMD] -- CMD..."
    argv = rest[1:]
    with open(out, "a") as f:
        for i in range(runs + 1):
            if prepare:
                subprocess.run(["sh", "-c", prepare.replace("{i}", str(i))], check=True)
            wall, rss = run_once(argv, i)
            if i > 0:  # run 0 warms caches
                f.write(json.dumps({"name": name, "wall": wall, "rss_mb": rss}) + "\n")


def load(out):
    rows = {}
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            rows.setdefault(r["name"], []).append(r)
    return rows


def stats(rows, name):
    walls = [r["wall"] for r in rows[name]]
    rss = [r["rss_mb"] for r in rows[name]]
    return min(walls), statistics.median(walls), min(rss), statistics.median(rss), len(walls)


def cmd_table(args):
    rows = load(args[0])
    pairs = list(zip(args[1::2], args[2::2]))
    print("| measure | cargo ebpf min / median | peer | peer min / median | ratio median (min) "
          "| peak RSS MB ours / peer (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for ours, peer in pairs:
        o, p = stats(rows, ours), stats(rows, peer)
        print(f"| {ours} | {o[0]*1000:.0f} / {o[1]*1000:.0f} ms | {peer} "
              f"| {p[0]*1000:.0f} / {p[1]*1000:.0f} ms | {o[1]/p[1]:.2f} ({o[0]/p[0]:.2f}) "
              f"| {o[3]:.1f} / {p[3]:.1f} |")
    print(f"\n(runs per command: {min(stats(rows, n)[4] for pair in pairs for n in pair)})")


if __name__ == "__main__":
    {"run": cmd_run, "table": cmd_table}[sys.argv[1]](sys.argv[2:])
