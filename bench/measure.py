"""Runs a command N times and prints the median wall time and the peak RSS of each run
(per child, from wait4), as `name: median X ms (min Y, max Z), peak RSS median W MB`."""
import os, statistics, subprocess, sys, time

def measure(name, argv, runs=20, env=None):
    walls, rss = [], []
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append((time.perf_counter() - start) * 1000)
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{name}: run failed: {err}")
        rss.append(usage.ru_maxrss / 1024)
    print(f"{name}: median {statistics.median(walls):.1f} ms (min {min(walls):.1f}, max {max(walls):.1f}) "
          f"over {runs} runs; peak RSS median {statistics.median(rss):.1f} MB (max {max(rss):.1f})")

if __name__ == "__main__":
    runs = int(os.environ.get("RUNS", "20"))
    measure(sys.argv[1], sys.argv[2:], runs)
