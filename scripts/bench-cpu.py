"""CPU per message: login-etl's own CPU (getrusage user+sys of the drain process, divided by
the messages) and messages/s, for `run --drain` against LocalStack and against the in-memory SQS
stand-in (examples/sqs-stand-in.rs, where the emulator is not the limit). Variants are
alternated within one run and each reported as the median of its rounds, so the ratios mean
something on a shared machine. Run by scripts/bench.sh (which builds what it needs).

With --instructions, each variant also drains --instruction-messages (5,000) messages from the
stand-in under valgrind's callgrind and reports instructions per message: a count that does not
depend on the machine's other load, so a lever worth a few percent shows where CPU time is noise.

Usage: bench-cpu.py BINARY STAND_IN DATABASE_URL [--messages N] [--rounds R] [--variant NAME=SPEC ...]
                    [--instructions] [--instruction-messages N]
  --variant json=LOGIN_ETL_SQS_PROTOCOL=json   the same drain with that environment
  --variant mimalloc=binary:target/mimalloc/release/login-etl   the drain by another build"""

import argparse
import os
import resource
import statistics
import subprocess
import time

LOCALSTACK = "http://127.0.0.1:4566"
STAND_IN_ADDR = "127.0.0.1:4599"


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def login_etl(binary, endpoint, database_url, queue, extra_env=None, *args):
    env = dict(os.environ, LOGIN_ETL_SQS_ENDPOINT=endpoint, LOGIN_ETL_QUEUE_NAME=queue,
               LOGIN_ETL_DATABASE_URL=database_url, LOGIN_ETL_MASK_KEY="ab" * 32,
               LOGIN_ETL_LOG="warn", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1", LOGIN_ETL_DRAIN_IDLE_SECONDS="1", **(extra_env or {}))
    return subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True)


def instructions(binary, endpoint, database_url, queue, messages, variant):
    """Instructions per message of one drain under callgrind (user space of login-etl only)."""
    login_etl(binary, endpoint, database_url, queue, None, "send-sample", "--create-queue",
              "--count", str(messages), "--seed", "7")
    drainer, extra_env = variant
    env = dict(extra_env)
    out = login_etl("valgrind", endpoint, database_url, queue, env, "--tool=callgrind",
                    "--callgrind-out-file=/dev/null", drainer or binary, "run", "--drain")
    received = int(out.stdout.split("received ")[1].split(",")[0])
    assert received >= messages, out.stdout
    collected = int(out.stderr.split("Collected : ")[1].split()[0])
    return collected / messages


def drain(binary, endpoint, database_url, queue, messages, variant):
    login_etl(binary, endpoint, database_url, queue, None, "send-sample", "--create-queue",
              "--count", str(messages), "--seed", "7")
    drainer, extra_env = variant
    before = children_cpu()
    started = time.monotonic()
    out = login_etl(drainer or binary, endpoint, database_url, queue, extra_env, "run", "--drain").stdout
    wall = time.monotonic() - started
    cpu = children_cpu() - before
    received = int(out.split("received ")[1].split(",")[0])
    busy = float(out.split("busy ")[1].split("s)")[0])
    assert received >= messages, out
    return cpu / messages * 1e6, messages / busy, wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("stand_in")
    parser.add_argument("database_url")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--instruction-messages", type=int, default=5000)
    args = parser.parse_args()
    server = subprocess.Popen([args.stand_in, STAND_IN_ADDR], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    variants = [("default", (None, {}))]
    for spec in args.variant:
        name, _, assignment = spec.partition("=")
        if assignment.startswith("binary:"):
            variants.append((name, (assignment[len("binary:"):], {})))
        else:
            key, _, value = assignment.partition("=")
            variants.append((name, (None, {key: value})))
    targets = [("stand-in", "http://" + STAND_IN_ADDR), ("localstack", LOCALSTACK)]
    results = {}
    try:
        for round_ in range(args.rounds):
            for target, endpoint in targets:
                for name, variant in variants:
                    queue = f"login-etl-cpu-{target}"
                    cpu, rate, _ = drain(args.binary, endpoint, args.database_url, queue,
                                         args.messages, variant)
                    results.setdefault((target, name), []).append((cpu, rate))
                    print(f"round {round_ + 1} {target:10} {name:12} {cpu:6.1f} µs CPU/message "
                          f"{rate:8.0f} messages/s", flush=True)
        counts = {}
        for name, variant in variants if args.instructions else []:
            counts[name] = instructions(args.binary, "http://" + STAND_IN_ADDR, args.database_url,
                                        "login-etl-instructions", args.instruction_messages,
                                        variant)
            print(f"callgrind  {name:12} {counts[name]:9.0f} instructions/message", flush=True)
    finally:
        server.kill()
    print(f"\nmedians of {args.rounds} rounds, {args.messages} messages per drain:")
    for (target, name), runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        base = statistics.median(r[0] for r in results[(target, "default")])
        print(f"  {target:10} {name:12} {cpu:6.1f} µs CPU/message ({cpu / base:.2f}x default) "
              f"{rate:8.0f} messages/s")
    for name, count in counts.items():
        print(f"  callgrind  {name:12} {count:9.0f} instructions/message "
              f"({count / counts['default']:.2f}x default)")


main()
