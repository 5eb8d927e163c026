"""The soak's samples as a table, and whether cost and memory stay flat over time.

Input (scripts/soak.sh writes it every 10 s, or --sample-every): `seconds done cpu1 rss1 cpu2 rss2 ...` where done
is the ledger's count, cpuN the Nth consumer's user+sys CPU seconds and rssN its RSS in KiB.
Prints each interval's rate, CPU per message (all consumers' CPU over the messages done in it)
and every consumer's RSS; then the CPU per message of the first and second half of the run and
each consumer's RSS range, which is what "flat over time" means here.

Usage: soak-samples.py SAMPLES CONSUMERS"""

import sys


def main():
    path, consumers = sys.argv[1], int(sys.argv[2])
    rows = []
    for line in open(path):
        fields = line.split()
        if len(fields) != 2 + 2 * consumers:
            continue
        t, done = int(fields[0]), int(fields[1])
        cpu = [float(x) for x in fields[2::2]]
        rss = [int(x) / 1024 for x in fields[3::2]]
        rows.append((t, done, cpu, rss))
    if len(rows) < 2:
        print("soak samples: too few to say anything (the run was shorter than 20 s)")
        return
    print(f"{'s':>5} {'done':>9} {'msg/s':>7} {'CPU µs/msg':>10}  RSS MiB per consumer")
    intervals = []
    for (t0, d0, c0, _), (t1, d1, c1, rss) in zip(rows, rows[1:]):
        messages = d1 - d0
        # A consumer restarted between samples (the crash loop) counts from its new start.
        cpu = sum(b - a if b >= a else b for a, b in zip(c0, c1))
        per_message = f"{cpu / messages * 1e6:10.1f}" if messages else f"{'-':>10}"
        rate = messages / (t1 - t0) if t1 > t0 else 0
        intervals.append((messages, cpu))
        print(f"{t1:5} {d1:9} {rate:7.0f} {per_message}  "
              + " ".join(f"{r:5.1f}" for r in rss))
    half = len(intervals) // 2 or 1
    for name, part in (("first half", intervals[:half]), ("second half", intervals[half:])):
        messages = sum(m for m, _ in part)
        cpu = sum(c for _, c in part)
        if messages:
            print(f"CPU per message, {name}: {cpu / messages * 1e6:.1f} µs ({messages} messages)")
    for i in range(consumers):
        seen = [rss[i] for _, _, _, rss in rows[1:] if rss[i] > 0]
        if seen:
            print(f"consumer {i + 1} RSS: {min(seen):.1f}–{max(seen):.1f} MiB")


main()
