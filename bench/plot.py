"""Plots of a converge-bench results file (JSON lines): latency vs offered rate, RSS vs connections."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator  # noqa: E402


def label_rates(axis, rates) -> None:
    """Ticks at the offered rates themselves, as plain numbers (log axes otherwise overlap labels)."""
    axis.set_major_locator(FixedLocator(rates))
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def workers(machine: dict) -> str:
    """The instances' HTTP workers, when the run recorded them (runs before 829a87f did not)."""
    n = machine.get("http_workers_per_instance")
    return f" with {n} HTTP worker(s) each" if n else ""


def stamp_split(large: dict) -> str:
    """Where the large group's time went, split at the server's stamp (runs before 40ce2cb have no split)."""
    before, after = large.get("before_stamp", {}), large.get("stamp_to_last_recipient", {})
    if not before.get("count"):
        return ""
    return (f" Split at the server's stamp: schedule → stamp p50 {before.get('p50_ms')} ms, p99 {before.get('p99_ms')} ms; "
            f"stamp → last recipient p50 {after.get('p50_ms')} ms, p99 {after.get('p99_ms')} ms.")


# The grid's two send orders, each a scenario of its own: (scenario, title, plot file).
GRIDS = (
    ("grid", "Fan-out grid, chat by chat: latency vs offered rate", "grid-latency.png"),
    ("grid-interleaved", "Fan-out grid, interleaved: latency vs offered rate", "grid-interleaved-latency.png"),
)


def grid_figure(steps: list, title: str, png: Path) -> None:
    """Latency percentiles and throughput against the offered rate, one point per step."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    rates = [s["offered_rate"] for s in steps]
    for key, style in (("p50_ms", "o-"), ("p90_ms", "s-"), ("p99_ms", "^-"), ("max_ms", "x--")):
        ax.plot(rates, [s["deliver"].get(key) for s in steps], style, label=f"send→deliver {key[:-3]}")
    ax.plot(rates, [s["ack"].get("p99_ms") for s in steps], "d:", label="ack p99")
    # Up to the client's socket, without the generator's wait to read (runs before it have none).
    if all("deliver_at_socket" in s for s in steps):
        for key, style in (("p50_ms", "o:"), ("p99_ms", "^:")):
            ax.plot(rates, [s["deliver_at_socket"].get(key) for s in steps], style, ms=3, lw=0.8,
                    label=f"in the client's socket {key[:-3]}")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_rates(ax.xaxis, rates)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("offered messages/s (each → 10 deliveries)")
    ax.set_ylabel("latency from scheduled send, ms")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax2.plot(rates, [s["achieved_rate"] for s in steps], "o-", label="acknowledged messages/s")
    ax2.plot(rates, rates, ":", color="grey", label="offered")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    label_rates(ax2.xaxis, rates)
    label_rates(ax2.yaxis, rates)
    ax2.tick_params(axis="x", labelrotation=45)
    ax2.set_xlabel("offered messages/s")
    ax2.set_ylabel("messages/s")
    ax2.set_title("throughput")
    ax2.legend(fontsize=8)
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(results: str, out_dir: str) -> None:
    lines = [json.loads(line) for line in open(results) if line.strip()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = next((l for l in lines if l.get("scenario") == "machine" and "cpus" in l), {})
    subtitle = f"{machine.get('cpus', '?')} cores, {machine.get('instances', '?')} chat-service instance(s)"

    for scenario, title, png in GRIDS:
        steps = [l for l in lines if l.get("scenario") == scenario and "step" in l]
        if steps:
            grid_figure(steps, f"{title}\n{subtitle}", out / png)

    ramp = [l for l in lines if l.get("scenario") == "idle" and l.get("phase") == "ramp"]
    to_the_limit = [l for l in lines if l.get("scenario") == "idle-max" and l.get("phase") == "ramp"]
    if ramp or to_the_limit:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        if ramp:
            xs = [r["connections"] for r in ramp]
            ax.plot(xs, [r["server_rss_kib"] / 1024 for r in ramp], "o-", label="chat-service RSS (all instances)")
        if to_the_limit:
            ax.plot([r["connections"] for r in to_the_limit], [r["server_rss_kib"] / 1024 for r in to_the_limit], "s:",
                    ms=4, label="the same, as many connections as the box allows")
        summary = next((l for l in lines if l.get("scenario") == "idle" and l.get("phase") == "summary"), None)
        if summary:
            ax.plot([summary["connections"]], [summary["server_rss_held_kib"] / 1024], "r*", ms=12,
                    label=f"after {summary['hold_s']:.0f} s hold")
            ax.set_title(f"Idle connections: {summary['rss_slope_bytes_per_connection']:.0f} B/connection (slope)\n{subtitle}")
        ax.set_xlabel("authenticated idle connections")
        ax.set_ylabel("RSS, MiB")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "idle-rss.png", dpi=110)
        plt.close(fig)


def at_socket(line: dict, key: str) -> str:
    """A latency up to the client's socket, p50 / p99 ("–" in runs before it was measured)."""
    h = line.get(key)
    return f"{h.get('p50_ms')} / {h.get('p99_ms')}" if h else "–"


def stage(st: dict) -> str:
    """One server stage: mean, and the buckets holding p50 and p99."""
    if not st.get("count"):
        return "–"
    bound = lambda v: f"≤ {v:g}" if v is not None else "> 10 000"
    return f"{st['mean_ms']:.2f} ({bound(st.get('p50_le_ms'))} / {bound(st.get('p99_le_ms'))})"


def summary(results: str) -> str:
    """The results as Markdown tables (bench/results/summary.md)."""
    lines = [json.loads(line) for line in open(results) if line.strip()]
    out = []
    machine = next((l for l in lines if l.get("scenario") == "machine" and "cpus" in l), {})
    after = next((l for l in lines if l.get("scenario") == "machine" and "load_after" in l), {})
    out.append(f"Machine: {machine.get('cpus')} × {machine.get('cpu_model')}, {machine.get('mem_gib')} GiB, "
               f"kernel {machine.get('kernel')}; {machine.get('postgres', '').split(' on ')[0]} "
               f"(synchronous_commit={machine.get('synchronous_commit')}); {machine.get('redis', '').split(' sha')[0]}; "
               f"commit {machine.get('commit')}; {machine.get('instances')} chat-service instance(s)"
               f"{workers(machine)}; "
               f"load average {machine.get('load_before', 0):.2f} before, {after.get('load_after', 0):.2f} after.\n")
    staged = []
    for scenario, title, _ in GRIDS:
        steps = [l for l in lines if l.get("scenario") == scenario and "step" in l]
        if not steps:
            continue
        out.append(f"{title.split(':')[0]}:\n")
        out.append("| offered msg/s | acked msg/s | deliveries/s | send→deliver p50 / p90 / p99 / max ms | cross-instance p50 / p99 ms | cross-instance in the client's socket p50 / p99 ms | ack p50 / p99 ms | generator late p50 / p99 ms | lost | dups | order | CPU % (chat-service ×N, postgres, redis, bench) | bench µs/delivery | ok |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in steps:
            d, c, a, p = s["deliver"], s["deliver_cross_instance"], s["ack"], s["procs"]
            # How late the generator issued its sends (recorded since the precise pacer).
            late = s.get("send_lateness", {})
            chats = " + ".join(f"{v['cpu_pct']:.0f}" for k, v in sorted(p.items()) if k.startswith("chat"))
            cpu = f"{chats}, {p.get('postgres', {}).get('cpu_pct', 0):.0f}, {p.get('redis', {}).get('cpu_pct', 0):.0f}, {p['bench']['cpu_pct']:.0f}"
            out.append(f"| {s['offered_rate']:.0f} | {s['achieved_rate']:.0f} | {s['deliveries_per_s']:.0f} | "
                       f"{d.get('p50_ms')} / {d.get('p90_ms')} / {d.get('p99_ms')} / {d.get('max_ms')} | "
                       f"{c.get('p50_ms')} / {c.get('p99_ms')} | {at_socket(s, 'deliver_cross_instance_at_socket')} | "
                       f"{a.get('p50_ms')} / {a.get('p99_ms')} | "
                       f"{late.get('p50_ms', '–')} / {late.get('p99_ms', '–')} | "
                       f"{s['lost']} | {s['duplicates']} | {s['order_violations']} | {cpu} | {s['bench_cpu_us_per_delivery']} | "
                       f"{'yes' if s['sustainable'] else 'no'} |")
        grid = next((l for l in lines if l.get("scenario") == scenario and l.get("phase") == "summary"), {})
        out.append(f"\nMaximum sustainable rate: {grid.get('max_sustainable_rate')} messages/s.\n")
        staged += [(f"{scenario} {l['offered_rate']:.0f} msg/s", l) for l in steps if l.get("server_stages")]
    staged += [("large group", l) for l in lines if l.get("scenario") == "large-group" and l.get("server_stages")]
    if staged:
        out.append("chat-service's own stage histograms over the same windows (both instances; mean, and the "
                   "Prometheus bucket holding p50 / p99, \"≤\"):\n")
        out.append("| window | batches | batch (statement + commit) ms | of which the statement's round trip ms | "
                   "announce ms | stamp → hub ms | hub → socket ms | WAL per message: flushes, bytes, full-page images | "
                   "mean WAL flush ms |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for name, l in staged:
            st = l["server_stages"]
            pg = l.get("postgres_per_message") or {}
            flush = pg.get("wal_sync_ms_mean")
            out.append(f"| {name} | {st.get('batch', {}).get('count', 0):.0f} | " + " | ".join(
                stage(st.get(key, {})) for key in ("batch", "statement", "announce", "stamp_to_hub", "hub_to_socket"))
                + f" | {pg.get('wal_syncs', '–')}, {pg.get('wal_bytes', '–')}, {pg.get('wal_full_pages', '–')}"
                + f" | {'–' if flush is None else f'{flush:.2f}'} |")
        out.append("")
    idle = next((l for l in lines if l.get("scenario") == "idle" and l.get("phase") == "summary"), None)
    if idle:
        out.append(f"Idle: {idle['connections']} connections, RSS slope {idle['rss_slope_bytes_per_connection']:.0f} B/connection, "
                   f"{idle['rss_after_hold_bytes_per_connection']:.0f} B/connection after a {idle['hold_s']:.0f} s hold "
                   f"(baseline {idle['server_rss_baseline_kib'] / 1024:.0f} MiB → {idle['server_rss_held_kib'] / 1024:.0f} MiB); "
                   f"closes during the hold: {idle['closes_during_hold']}.\n")
    most = next((l for l in lines if l.get("scenario") == "idle-max" and l.get("phase") == "summary"), None)
    if most:
        held_by = (f"held by {most['generator_processes']} generator processes of up to "
                   f"{most['connections_per_generator_process']} connections each; " if "generator_processes" in most else "")
        servers = "; ".join(f"{name} {f.get('open')} of {f.get('limit')} open files"
                            for name, f in sorted(most.get("server_open_files", {}).items()))
        out.append(f"Idle, as many as the box allows: {most['connections']} of {most['attempted']} connections opened "
                   f"(stopped by: {most['stopped_by']}; {held_by}generator's open files limit {most.get('open_files_limit')}"
                   f"{'; ' + servers if servers else ''}), RSS slope "
                   f"{most['rss_slope_bytes_per_connection']:.0f} B/connection, {most['rss_after_hold_bytes_per_connection']:.0f} "
                   f"B/connection after a {most['hold_s']:.0f} s hold (baseline {most['server_rss_baseline_kib'] / 1024:.0f} MiB → "
                   f"{most['server_rss_held_kib'] / 1024:.0f} MiB); closes during the hold: {most['closes_during_hold']}.\n")
    large = next((l for l in lines if l.get("scenario") == "large-group"), None)
    if large:
        lr = large["last_recipient"]
        out.append(f"Large group: {large['members']} members, {large['rate']:.0f} msg/s offered for {large['duration_s']:.0f} s: "
                   f"{large['acked']} of {large['sent']} acked; last recipient p50 {lr.get('p50_ms')} ms, p99 {lr.get('p99_ms')} ms, "
                   f"max {lr.get('max_ms')} ms (in the last member's socket p50 / p99 {at_socket(large, 'last_recipient_at_socket')} ms); lost {large['lost']}, duplicates {large['duplicates']}, order violations "
                   f"{large['order_violations']}; other frames {large.get('other_frames')}.{stamp_split(large)}\n")
    storm = next((l for l in lines if l.get("scenario") == "resume-storm"), None)
    if storm:
        out.append(f"Resume storm: {storm['clients']} clients × {storm['messages_per_chat']} missed messages: all reconnected in "
                   f"{storm['all_reconnected_s']} s, all caught up in {storm['all_caught_up_s']} s (per client p50 "
                   f"{storm['caught_up'].get('p50_ms')} ms, p99 {storm['caught_up'].get('p99_ms')} ms); backlog deliveries "
                   f"{storm['backlog_deliveries']} of {storm['expected_backlog_deliveries']}; lost {storm['lost']}, duplicates "
                   f"{storm['duplicates']}, order violations {storm['order_violations']}.\n")
    for ref in (l for l in lines if l.get("scenario") == "reference"):
        if "last_recipient" in ref:
            last = ref["last_recipient"]
            on = f" ({ref['framework']})" if "framework" in ref else ""
            out.append(f"- {ref['name']}{on}, {ref['members']} members, {ref['rate']:.0f} msg/s for {ref['duration_s']:.0f} s: "
                       f"last recipient p50 {last.get('p50_ms')} ms, p99 {last.get('p99_ms')} ms, max {last.get('max_ms')} ms "
                       f"(in the socket p50 / p99 {at_socket(ref, 'last_recipient_at_socket')} ms); "
                       f"{ref['deliveries']} of {ref['expected_deliveries']} deliveries")
        elif "all_caught_up_s" in ref:
            out.append(f"- {ref['name']}, {ref['clients']} clients × {ref['frames']} frames: all caught up in "
                       f"{ref['all_caught_up_s']} s (per client p50 {ref['caught_up'].get('p50_ms')} ms, "
                       f"p99 {ref['caught_up'].get('p99_ms')} ms)")
        elif "framework" in ref:
            out.append(f"- {ref['name']} ({ref['framework']}), {ref['connections']} connections held {ref['hold_s']:.0f} s: "
                       f"{ref['rss_after_hold_bytes_per_connection']:.0f} B/connection after the hold (slope "
                       f"{ref['rss_slope_bytes_per_connection']:.0f} B)")
        elif "rps" in ref:
            out.append(f"- {ref['name']}, pipeline {ref['pipeline']}, {ref['clients']} clients: {ref['rps']:.0f} requests/s")
        else:
            out.append(f"- {ref['name']}, {ref['clients']} clients, {ref['seconds']} s: {ref['tps']:.0f} transactions/s")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results/results.jsonl"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "bench/results"
    main(results, out_dir)
    (Path(out_dir) / "summary.md").write_text(summary(results))
