#!/usr/bin/env python3
"""PostgreSQL's CPU per execution of the writer's statements (chat-service/src/service/writer/postgres.rs).

    bench/statement-cpu [--variants] [DATABASE_URL]     (a virtualenv with psycopg, then this script)

With --variants, also the variants measured and not kept (bench/pgbench/variants/), at 1, 3 and 6 sends.

The database must hold Converge's tables (a database chat-service has migrated, e.g. bench/run's
converge_bench); bench/pgbench/setup.sql is applied first (200 chats of one member each). Runs on the
same host as PostgreSQL: it reads the backend's CPU time from /proc. Each statement is prepared and
executed on one connection set up as the writer's (generic plans, no sequential scans), with
synchronous_commit off so that the flush's wait does not count, for SECONDS per round, two rounds.
"""
import datetime, hashlib, os, pathlib, random, re, sys, time, uuid

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECONDS = 4


def statement(name):
    source = (ROOT / "chat-service/src/service/writer/postgres.rs").read_text()
    text = re.search(rf'const {name}: &str = "(.*?)";\n', source, re.S).group(1)
    text = re.sub(r"\s+", " ", text.replace("\\\n", "").replace('\\"', '"'))
    return re.sub(r"\$(\d+)", r"%(p\1)s", text)


def chat(n):
    return uuid.UUID(hashlib.md5(f"pgbench-chat{n}".encode()).hexdigest())


def user(n):
    return uuid.UUID(hashlib.md5(f"pgbench-user{n}".encode()).hexdigest())


def batch(sends):
    """A batch of `sends` sends, each to a different chat."""
    def values():
        ns = [n + 1 for n in random.sample(range(200), sends)]
        return {
            "p1": datetime.datetime.now(datetime.timezone.utc),
            "p2": [chat(n) for n in ns], "p3": [user(n) for n in ns],
            "p4": [str(uuid.uuid4()) for _ in ns], "p5": ["benchmark message"] * sends, "p6": [0] * sends,
            "p7": [uuid.uuid4() for _ in ns], "p8": sorted({chat(n) for n in ns}), "p9": [False] * sends,
            "p10": sorted({user(n) for n in ns}),
            # No image: the nil attachment and width 0 the writer sends for a text message.
            "p11": [uuid.UUID(int=0)] * sends, "p12": [0] * sends, "p13": [0] * sends,
        }
    return values


def one():
    n = random.randrange(200) + 1
    return {"p1": datetime.datetime.now(datetime.timezone.utc), "p2": chat(n), "p3": user(n),
            "p4": str(uuid.uuid4()), "p5": "benchmark message", "p6": None, "p7": uuid.uuid4(),
            "p8": None, "p9": None, "p10": None}


def variant(name):
    text = (ROOT / "bench/pgbench/variants" / name).read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return re.sub(r"\$(\d+)", r"%(p\1)s", re.sub(r"\s+", " ", text))


FUNCTION_CALL = "SELECT * FROM pg_temp.store_batch(" + ", ".join(f"%(p{i})s" for i in range(1, 10)) + ")"


def main(url, variants):
    conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
    for setup in (ROOT / "bench/pgbench/setup.sql").read_text().split(";\n"):
        if setup.strip():
            conn.execute(setup.encode(), prepare=False)
    for setting in ("plan_cache_mode = force_generic_plan", "enable_seqscan = off", "synchronous_commit = off"):
        conn.execute(f"SET {setting}".encode())
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def cpu_ticks():
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    cases = [("STORE_ONE, one send", statement("STORE_ONE"), one),
             ("STORE, one send", statement("STORE"), batch(1)),
             ("STORE, three sends", statement("STORE"), batch(3))]
    if variants:
        function = (ROOT / "bench/pgbench/variants/store-function.sql").read_text()
        conn.execute(function.encode(), prepare=False)
        distinct = variant("store-distinct-chats.sql")
        cases += [("STORE, six sends", statement("STORE"), batch(6))]
        cases += [(f"distinct-chats variant, {n} send(s)", distinct, batch(n)) for n in (1, 3, 6)]
        cases += [(f"PL/pgSQL function, {n} send(s)", FUNCTION_CALL, batch(n)) for n in (1, 3, 6)]
    for round_ in (1, 2):
        for name, sql, values in cases:
            for _ in range(50):  # prepared, planned, warm
                conn.execute(sql, values())
            start, count, end = cpu_ticks(), 0, time.monotonic() + SECONDS
            while time.monotonic() < end:
                conn.execute(sql, values())
                count += 1
            ticks = cpu_ticks() - start
            print(f"round {round_}: {name}: {ticks * 1e6 / os.sysconf('SC_CLK_TCK') / count:.0f} µs of backend CPU per execution ({count} executions)", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    variants = "--variants" in args
    args = [a for a in args if a != "--variants"]
    main(args[0] if args else "postgres://postgres@127.0.0.1:5432/converge_bench", variants)
