#!/usr/bin/env python3
"""PostgreSQL's CPU per execution of the writer's statements (chat-service/src/service/writer/postgres.rs).

    bench/statement-cpu [--variants] [DATABASE_URL]     (a virtualenv with psycopg, then this script)
    bench/statement-cpu --commits A,B [--sizes 3,10,30,100] [DATABASE_URL]

With --variants, also the variants measured and not kept (bench/pgbench/variants/), at 1, 3 and 6 sends.
With --commits, the batch statement (STORE) as each of those commits wrote it (read with `git show`),
alternated commit by commit at each batch size (--sizes, default 3, 10, 30, 100 sends): how a change
of the statement moves its cost where batches are large, near the grid's maximum rate. Every commit's
statement runs on the database as it is, so a change of the schema is not part of the comparison.

The database must hold Converge's tables (a database chat-service has migrated, e.g. bench/run's
converge_bench); bench/pgbench/setup.sql is applied first (200 chats of one member each). Runs on the
same host as PostgreSQL: it reads the backend's CPU time from /proc. Each chat gets nine more members,
as in the grid, and each send of a batch comes from one of its chat's ten. Each statement is prepared and
executed on one connection set up as the writer's (generic plans, no sequential scans), with
synchronous_commit off so that the flush's wait does not count, for SECONDS per round, two rounds.
"""
import argparse, datetime, hashlib, os, pathlib, random, re, subprocess, sys, time, uuid

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECONDS = 4


WRITER = "chat-service/src/service/writer/postgres.rs"


def statement(name, commit=None):
    """The writer's statement `name`, from the working tree or as `commit` wrote it."""
    if commit is None:
        source = (ROOT / WRITER).read_text()
    else:
        show = ["git", "-C", str(ROOT), "show", f"{commit}:{WRITER}"]
        shown = subprocess.run(show, capture_output=True, text=True)
        if shown.returncode != 0:
            sys.exit(f"--commits: no {WRITER} at {commit}: {shown.stderr.strip()}")
        source = shown.stdout
    text = re.search(rf'const {name}: &str = "(.*?)";\n', source, re.S).group(1)
    text = re.sub(r"\s+", " ", text.replace("\\\n", "").replace('\\"', '"'))
    return re.sub(r"\$(\d+)", r"%(p\1)s", text)


def chat(n):
    return uuid.UUID(hashlib.md5(f"pgbench-chat{n}".encode()).hexdigest())


def user(n, member=0):
    """Member 0 is setup.sql's; 1 – 9 are this script's."""
    name = f"pgbench-user{n}" if member == 0 else f"pgbench-user{n}-{member}"
    return uuid.UUID(hashlib.md5(name.encode()).hexdigest())


MEMBERS = """INSERT INTO chat_participants (chat_id, user_id, role, joined_at)
  SELECT md5('pgbench-chat' || n)::uuid, md5('pgbench-user' || n || '-' || m)::uuid, 'member', now()
  FROM generate_series(1, 200) n, generate_series(1, 9) m"""


def batch(sends):
    """A batch of `sends` sends, each to a different chat."""
    def values():
        ns = [n + 1 for n in random.sample(range(200), sends)]
        senders = [user(n, random.randrange(10)) for n in ns]
        return {
            "p1": datetime.datetime.now(datetime.timezone.utc),
            "p2": [chat(n) for n in ns], "p3": senders,
            "p4": [str(uuid.uuid4()) for _ in ns], "p5": ["benchmark message"] * sends, "p6": [0] * sends,
            "p7": [uuid.uuid4() for _ in ns], "p8": sorted({chat(n) for n in ns}), "p9": [False] * sends,
            "p10": sorted(set(senders)),
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


def writer_connection(url):
    """A connection set up as the writer's, and its backend's pid."""
    conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
    for setting in ("plan_cache_mode = force_generic_plan", "enable_seqscan = off", "synchronous_commit = off"):
        conn.execute(f"SET {setting}".encode())
    return conn, conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def main(url, variants, commits, sizes):
    conn, pid = writer_connection(url)
    for setup in (ROOT / "bench/pgbench/setup.sql").read_text().split(";\n"):
        if setup.strip():
            conn.execute(setup.encode(), prepare=False)
    conn.execute(MEMBERS.encode(), prepare=False)

    def cpu_ticks(pid):
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    cases = [("STORE_ONE, one send", statement("STORE_ONE"), one),
             ("STORE, one send", statement("STORE"), batch(1)),
             ("STORE, three sends", statement("STORE"), batch(3))]
    if commits:
        # One connection per commit: each keeps its own plan, as each build's writer would.
        cases = [(f"{commit}'s STORE, {n} sends", (commit, statement("STORE", commit)), batch(n))
                 for n in sizes for commit in commits]
    if variants:
        function = (ROOT / "bench/pgbench/variants/store-function.sql").read_text()
        conn.execute(function.encode(), prepare=False)
        distinct = variant("store-distinct-chats.sql")
        cases += [("STORE, six sends", statement("STORE"), batch(6))]
        cases += [(f"distinct-chats variant, {n} send(s)", distinct, batch(n)) for n in (1, 3, 6)]
        cases += [(f"PL/pgSQL function, {n} send(s)", FUNCTION_CALL, batch(n)) for n in (1, 3, 6)]
    connections = {None: (conn, pid), **{commit: writer_connection(url) for commit in commits}}
    for round_ in (1, 2):
        for name, sql, values in cases:
            commit, sql = sql if isinstance(sql, tuple) else (None, sql)
            conn, pid = connections[commit]
            for _ in range(50):  # prepared, planned, warm
                conn.execute(sql, values())
            start, count, end = cpu_ticks(pid), 0, time.monotonic() + SECONDS
            while time.monotonic() < end:
                conn.execute(sql, values())
                count += 1
            ticks = cpu_ticks(pid) - start
            print(f"round {round_}: {name}: {ticks * 1e6 / os.sysconf('SC_CLK_TCK') / count:.0f} µs of backend CPU per execution ({count} executions)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--commits", type=lambda v: v.split(","), default=[])
    parser.add_argument("--sizes", type=lambda v: [int(n) for n in v.split(",")], default=[3, 10, 30, 100])
    parser.add_argument("url", nargs="?", default="postgres://postgres@127.0.0.1:5432/converge_bench")
    args = parser.parse_args()
    if any(n < 1 or n > 200 for n in args.sizes):
        parser.error("--sizes: 1 to 200 sends (one per chat)")
    main(args.url, args.variants, args.commits, args.sizes)
