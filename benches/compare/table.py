#!/usr/bin/env python3
"""Turn run.sh's raw lines into the comparison table (standard library only).

Input lines (anything else is ignored):
    BUILD peer=<p> status=<ok|failed|partial:w1,w2>
    RUN round=<r> peer=<p> workload=<label> rc=<rc> | RESULT <workload> <metric>=<v> [k=v ...]
    ERR round=<r> peer=<p> workload=<label> rc=<rc> | <why>

Each cell is the median over the rounds that produced a RESULT. The
"goro/best" column divides goro's median by the best other peer's (lowest
for "lower is better" rows, highest for "higher"); a peer that lost messages
in that row, or ran a smaller size than most peers, is not a valid baseline
and is skipped when picking the best.

With --quick the exit status is 1 when a built peer loses a message (except
the known-lossy pairs in KNOWN_LOSSY, which are only reported) or a goro
workload crashes or times out.
"""

import argparse
import re
import statistics
import sys
from collections import defaultdict

PEERS = ["go", "may", "tokio", "threads", "goro"]

# (row label, workload label, metric key, better, unit shown in the table)
ROWS = [
    ("spawn", "spawn", "ns_per_op", "lower", "ns/spawn+join"),
    ("pingpong", "pingpong", "ns_per_roundtrip", "lower", "ns/round trip"),
    ("chan_mpmc", "chan_mpmc", "ns_per_msg", "lower", "ns/msg"),
    ("select", "select", "ns_per_msg", "lower", "ns/msg received"),
    ("mutex", "mutex", "ns_per_lock", "lower", "ns/lock"),
    ("idle", "idle", "bytes_per_task", "lower", "bytes/task"),
    ("idle_1m", "idle_1m", "bytes_per_task", "lower", "bytes/task"),
    # goro alone, GORO_SHARED_STACKS=1 (run.sh SHARED_ARGS).
    ("idle_shared", "idle_shared", "bytes_per_task", "lower", "bytes/task"),
    ("idle_1m_shared", "idle_1m_shared", "bytes_per_task", "lower", "bytes/task"),
    ("pingpong_shared", "pingpong_shared", "ns_per_roundtrip", "lower", "ns/round trip"),
    ("echo", "echo", "req_per_s", "higher", "req/s"),
    ("echo syscalls", "echo", "syscalls_per_req", "lower", "syscalls/req (perf)"),
    ("timers p99", "timers", "p99_late_ms", "lower", "ms late (p99)"),
    ("timers max", "timers", "max_late_ms", "lower", "ms late (max)"),
    ("timers wall", "timers", "overrun_ms", "lower", "ms over ideal"),
    ("chain", "chain", "ns_per_hop", "lower", "ns/hop"),
]

# Pairs known to lose messages: reported, never a --quick failure.
KNOWN_LOSSY = {("may", "select")}

# rc -> cell text for runs that produced no usable RESULT.
def failure_text(rc):
    if rc in (124, 137):
        return "timeout"
    if rc == 3:
        return "n/a (not built)"
    return "failed"


PANIC_AT = re.compile(r"thread '[^']*'(?: \(\d+\))? panicked at \S+?:\d+:\d+:\s*")


def tidy_why(why):
    """Shortens a captured stderr excerpt: panic locations out, length capped."""
    why = PANIC_AT.sub("panic: ", why).strip()
    return why if len(why) <= 160 else why[:157] + "..."


def parse_kv(words):
    out = {}
    for w in words:
        if "=" in w:
            k, v = w.split("=", 1)
            out[k] = v
    return out


def fmt(v):
    if v != v:
        return "nan"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def modal(values):
    values = [v for v in values if v is not None]
    return max(set(values), key=values.count) if values else None


def substitution_notes(meta, peers):
    """One line per peer: its channel substitutes and its smaller sizes."""
    by_token = defaultdict(list)  # (peer, token) -> [workload]
    sizes = defaultdict(list)  # peer -> ["wl n=.."]
    workloads = []
    for _, wl, *_ in ROWS:
        if wl not in workloads:
            workloads.append(wl)
    for wl in workloads:
        common_n = modal([meta[(p, wl)].get("n") for p in peers if (p, wl) in meta])
        common_v = modal([meta[(p, wl)].get("values") for p in peers if (p, wl) in meta])
        for p in peers:
            r = meta.get((p, wl))
            if r is None:
                continue
            for tok in filter(None, r.get("note", "").split(",")):
                if tok not in ("smaller_n", "fewer_values"):
                    by_token[(p, tok)].append(wl)
            diff = []
            if r.get("n") != common_n:
                diff.append(f"n={r.get('n')}")
            if r.get("values") != common_v:
                diff.append(f"values={r.get('values')}")
            if diff:
                sizes[p].append(f"{wl} " + " ".join(diff))
    out = []
    for p in peers:
        parts = [f"{tok} in {', '.join(wls)}" for (q, tok), wls in by_token.items() if q == p]
        if sizes[p]:
            parts.append("smaller sizes: " + ", ".join(sizes[p]))
        if parts:
            out.append(f"{p}: " + "; ".join(parts))
    return out


COLORS = {"go": "#00add8", "may": "#9b59b6", "tokio": "#e67e22", "threads": "#7f8c8d",
          "goro": "#c0392b"}


def esc(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, chart, title):
    """The chart: per workload, each peer's figure divided by the best other
    peer's (1.00x = the best peer; goro's bar in bold), lower-is-better and
    higher-is-better rows in panels of their own. SVG by hand, standard
    library only."""
    cap = 4.0
    left, bar_w, row_gap, bar_h = 190, 560, 8, 11
    y = 56
    parts = []

    def panel(name, rows):
        nonlocal y
        if not rows:
            return
        parts.append(f'<text x="10" y="{y}" class="h">{esc(name)}</text>')
        y += 12
        top = y
        for label, unit, vals, best, ratio in rows:
            peers_here = [p for p in PEERS if p in vals]
            h = len(peers_here) * (bar_h + 2) + row_gap
            parts.append(f'<text x="10" y="{y + 12}" class="l">{esc(label)}</text>')
            parts.append(f'<text x="10" y="{y + 25}" class="u">{esc(unit)}</text>')
            for i, p in enumerate(peers_here):
                r = vals[p] / best if best > 0 else 0.0
                w = min(r, cap) / cap * bar_w
                by = y + i * (bar_h + 2)
                cls = "g" if p == "goro" else "b"
                parts.append(f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" '
                             f'fill="{COLORS.get(p, "#555")}" class="{cls}"/>')
                more = " ›" if r > cap else ""
                parts.append(f'<text x="{left + w + 4:.1f}" y="{by + bar_h - 1}" class="v{cls}">'
                             f'{esc(p)} {r:.2f}x ({esc(fmt(vals[p]))}){more}</text>')
            y += h
        x1 = left + bar_w / cap
        parts.append(f'<line x1="{x1:.1f}" y1="{top - 4}" x2="{x1:.1f}" y2="{y - row_gap + 2}" class="one"/>')
        parts.append(f'<text x="{x1 - 12:.1f}" y="{y + 8}" class="u">1.00x</text>')
        y += 30

    lower = [r for r in chart if r[0] == "lower"]
    higher = [r for r in chart if r[0] == "higher"]
    panel("Lower is better: each figure / the best other peer's (below 1.00x: beats it)",
          [r[1:] for r in lower])
    panel("Higher is better: each figure / the best other peer's (above 1.00x: beats it)",
          [r[1:] for r in higher])
    height = y + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="960" height="{height}" '
            f'viewBox="0 0 960 {height}" font-family="sans-serif">'
            '<style>.h{font-size:13px;font-weight:bold}.l{font-size:12px}.u{font-size:10px;fill:#666}'
            '.vb{font-size:10px;fill:#333}.vg{font-size:10px;font-weight:bold;fill:#000}'
            '.g{stroke:#000;stroke-width:1}.one{stroke:#000;stroke-dasharray:3,3}</style>'
            '<rect width="100%" height="100%" fill="#fff"/>'
            f'<text x="10" y="24" class="h">{esc(title)}</text>'
            f'<text x="10" y="40" class="u">bars capped at {cap:.0f}x (›: beyond); '
            'figures in parentheses are the medians in the row\'s unit; peers that ran '
            'a smaller size or lost messages are left out</text>')
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "".join(parts) + "</svg>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--svg", help="also write the chart (SVG) to this path")
    ap.add_argument("--title", default="goro and its peers, benches/compare/run.sh")
    opts = ap.parse_args()
    peers = [p for p in PEERS if p in opts.peers.split(",")]

    build = {}
    runs = defaultdict(list)  # (peer, workload label) -> [(rc, kv dict or None)]
    errs = defaultdict(list)  # (peer, workload label) -> [why]
    seen_labels = set()
    with open(opts.raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            head, _, tail = line.partition(" | ")
            words = head.split()
            if not words:
                continue
            kv = parse_kv(words[1:])
            if words[0] == "BUILD":
                build[kv.get("peer")] = kv.get("status", "failed")
            elif words[0] == "RUN":
                key = (kv["peer"], kv["workload"])
                seen_labels.add(kv["workload"])
                res = None
                t = tail.split()
                if len(t) >= 3 and t[0] == "RESULT":
                    res = parse_kv(t[2:])
                runs[key].append((int(kv.get("rc", "1")), res))
            elif words[0] == "ERR":
                errs[(kv["peer"], kv["workload"])].append(tidy_why(tail))

    problems = []  # reasons for a --quick failure
    notes = []
    meta = {}  # (peer, workload) -> first good RESULT's fields
    cells = {}  # (row label, peer) -> (text, median or None, lossy)

    # Notes and --quick checks are made once per workload, on its first row.
    first_row = {}
    for label, wl, *_ in ROWS:
        first_row.setdefault(wl, label)

    for label, wl, metric, better, unit in ROWS:
        if wl not in seen_labels:
            continue
        primary = first_row[wl] == label
        for peer in peers:
            status = build.get(peer, "failed")
            rs = runs.get((peer, wl), [])
            if status == "failed":
                cells[(label, peer)] = ("n/a (build failed)", None, False)
                continue
            if not rs:
                cells[(label, peer)] = ("-", None, False)
                continue
            good = [r for rc, r in rs if rc == 0 and r is not None and metric in r]
            bad = [rc for rc, r in rs if not (rc == 0 and r is not None)]
            lost = []
            for r in good:
                l = int(float(r.get("lost", "0") or 0)) + int(float(r.get("errors", "0") or 0))
                if r.get("sum_ok") == "0" and l == 0:
                    l = -1  # counts right but the payload is wrong
                lost.append(l)
            lossy = any(l != 0 for l in lost)
            if not good:
                text = failure_text(bad[0] if bad else 1)
                cells[(label, peer)] = (text, None, False)
                if primary and text != "n/a (not built)":
                    why = next(iter(errs.get((peer, wl), [])), "")
                    notes.append(f"{peer}/{wl}: {text} (rc={bad[0] if bad else '?'}) {why}".rstrip())
                    if opts.quick and peer == "goro":
                        problems.append(f"goro {wl} {text}")
                continue
            vals = [float(r[metric]) for r in good]
            med = statistics.median(vals)
            text = fmt(med)
            if lossy:
                text += "*"
                worst = max(lost, key=abs)
                total = good[0].get("n", "?")
                what = "payload checksum wrong" if worst == -1 else f"lost/errors={worst} of n={total}"
                known = (peer, wl) in KNOWN_LOSSY
                if primary:
                    notes.append(f"{peer}/{wl}: * {what}" + (" (known)" if known else ""))
                    if opts.quick and not known:
                        problems.append(f"{peer} {wl}: {what}")
            if bad:
                text += "!"
                if primary:
                    notes.append(f"{peer}/{wl}: ! {len(bad)} of {len(rs)} runs failed (rc={bad[0]})")
            cells[(label, peer)] = (text, med, lossy)
            if primary:
                meta[(peer, wl)] = good[0]

    # The most common (n, values) of each workload: a peer that ran a smaller
    # size is shown but not picked as the best, the loads differ.
    same = {}
    for _, wl, *_ in ROWS:
        same[wl] = (modal([meta[(p, wl)].get("n") for p in peers if (p, wl) in meta]),
                    modal([meta[(p, wl)].get("values") for p in peers if (p, wl) in meta]))

    # Table.
    hdr = ["workload", "unit", "better"] + peers + ["best peer", "goro/best"]
    rows = []
    chart = []  # (better, label, unit, {peer: median}, best median, goro ratio)
    for label, wl, metric, better, unit in ROWS:
        if wl not in seen_labels:
            continue
        row = [label, unit, better]
        cands = []
        for peer in peers:
            text, med, lossy = cells.get((label, peer), ("-", None, False))
            row.append(text)
            r = meta.get((peer, wl), {})
            same_size = (r.get("n"), r.get("values")) == same[wl]
            if peer != "goro" and med is not None and not lossy and same_size:
                cands.append((med, peer))
        best = None
        if cands:
            best = min(cands) if better == "lower" else max(cands)
        row.append(best[1] if best else "-")
        g = cells.get((label, "goro"))
        if best and g and g[1] is not None and best[0] > 0:
            ratio = g[1] / best[0]
            row.append(f"{ratio:.2f}x")
            # Peers that ran another size, or lost messages, are left out
            # of the chart as they are of the choice of the best.
            vals = {p: cells[(label, p)][1] for p in peers
                    if (label, p) in cells and cells[(label, p)][1] is not None
                    and not cells[(label, p)][2]
                    and (p == "goro" or (meta.get((p, wl), {}).get("n"),
                                         meta.get((p, wl), {}).get("values")) == same[wl])}
            chart.append((better, label, unit, vals, best[0], ratio))
        else:
            row.append("n/a")
        rows.append(row)

    widths = [max(len(str(r[i])) for r in [hdr] + rows) for i in range(len(hdr))]
    def line(r):
        return "  ".join(str(c).ljust(widths[i]) if i < 3 else str(c).rjust(widths[i])
                         for i, c in enumerate(r)).rstrip()
    runs_word = "run" if opts.rounds == 1 else "runs"
    print(f"Median of {opts.rounds} {runs_word} per cell. goro/best = goro / best other peer "
          "(for 'lower' rows < 1.00x means goro wins; for 'higher' rows > 1.00x means goro wins).")
    print(line(hdr))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    notes += substitution_notes(meta, peers)
    partial = [p for p, s in build.items() if s.startswith("partial:")]
    for p in partial:
        notes.insert(0, f"{p}: only these workloads built: {build[p].split(':', 1)[1]}")
    if notes:
        print()
        print("notes (* = lost messages or bad payload, ! = some runs failed; cap1 = capacity-1 "
              "channel for an unbuffered one; unbounded = no bounded channel in that runtime; "
              "timed_out = stopped at its time limit; per-op figures are comparable across sizes):")
        for n in notes:
            print(f"  - {n}")
    if opts.svg:
        write_svg(opts.svg, chart, opts.title)
    if opts.quick:
        print()
        if problems:
            print("QUICK CHECK FAILED:")
            for p in problems:
                print(f"  - {p}")
            return 1
        print("quick check passed: no built peer lost a message (known exceptions reported above), "
              "no goro workload crashed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
