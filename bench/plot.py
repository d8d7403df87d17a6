"""Plots of a converge-bench results file (JSON lines): latency vs offered rate, RSS vs connections."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results: str, out_dir: str) -> None:
    lines = [json.loads(line) for line in open(results) if line.strip()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = next((l for l in lines if l.get("scenario") == "machine" and "cpus" in l), {})
    subtitle = f"{machine.get('cpus', '?')} cores, {machine.get('instances', '?')} chat-service instance(s)"

    steps = [l for l in lines if l.get("scenario") == "grid" and "step" in l]
    if steps:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        rates = [s["offered_rate"] for s in steps]
        for key, style in (("p50_ms", "o-"), ("p90_ms", "s-"), ("p99_ms", "^-"), ("max_ms", "x--")):
            ax.plot(rates, [s["deliver"].get(key) for s in steps], style, label=f"send→deliver {key[:-3]}")
        ax.plot(rates, [s["ack"].get("p99_ms") for s in steps], "d:", label="ack p99")
        ax.axhline(100, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered messages/s (each → 10 deliveries)")
        ax.set_ylabel("latency from scheduled send, ms")
        ax.set_title(f"Fan-out grid: latency vs offered rate\n{subtitle}")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax2.plot(rates, [s["achieved_rate"] for s in steps], "o-", label="acknowledged messages/s")
        ax2.plot(rates, rates, ":", color="grey", label="offered")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("offered messages/s")
        ax2.set_ylabel("messages/s")
        ax2.set_title("Fan-out grid: throughput")
        ax2.legend(fontsize=8)
        ax2.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "grid-latency.png", dpi=110)
        plt.close(fig)

    ramp = [l for l in lines if l.get("scenario") == "idle" and l.get("phase") == "ramp"]
    if ramp:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        xs = [r["connections"] for r in ramp]
        ax.plot(xs, [r["server_rss_kib"] / 1024 for r in ramp], "o-", label="chat-service RSS (all instances)")
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/results.jsonl",
         sys.argv[2] if len(sys.argv) > 2 else "bench/results")
