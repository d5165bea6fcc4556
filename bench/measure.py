"""Runs a command N times and prints its median wall time and peak RSS.

Wall time is measured around a plain spawn. Peak RSS comes from separate runs under GNU
time (`/usr/bin/time -f %M`): the rusage of a child forked from Python would report
Python's own size, since the high-water mark before exec counts too."""
import os, statistics, subprocess, sys, tempfile, time

def run_ok(name, argv):
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit(f"{name}: run failed: {p.stderr.decode(errors='replace')}")

def measure(name, argv, runs=20):
    walls, rss = [], []
    with tempfile.NamedTemporaryFile() as out:
        for _ in range(runs):
            start = time.perf_counter()
            run_ok(name, argv)
            walls.append((time.perf_counter() - start) * 1000)
            run_ok(name, ["/usr/bin/time", "-f", "%M", "-o", out.name] + argv)
            rss.append(int(open(out.name).read().split()[-1]) / 1024)
    print(f"{name}: median {statistics.median(walls):.1f} ms (min {min(walls):.1f}, max {max(walls):.1f}) "
          f"over {runs} runs; peak RSS median {statistics.median(rss):.1f} MB (max {max(rss):.1f})")

if __name__ == "__main__":
    measure(sys.argv[1], sys.argv[2:], int(os.environ.get("RUNS", "20")))
