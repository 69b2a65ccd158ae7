"""The "FTS transfers" page, rendered on the server: small HTML, inline SVG, no script asset.

It lives in Airflow's tab (an iframe of the same origin), follows the light or dark mode
of the browser (``prefers-color-scheme``) or the one chosen in Airflow's UI, and needs
nothing from the internet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlencode

from airflow_provider_fts.client.states import FileState
from airflow_provider_fts.plugins.report import (
    FileRow,
    Filters,
    Job,
    Report,
    Unavailable,
    failure_groups,
    progress,
    throughput,
)

#: Seconds between reloads while a job is active.
REFRESH_SECONDS = 15

STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1a202c;--muted:#718096;--line:#e2e8f0;
--panel:#f7fafc;--accent:#017cee;--ok:#16a34a;--bad:#dc2626;--warn:#d97706;--run:#0891b2}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){--bg:#101014;--fg:#e4e4e7;
--muted:#a1a1aa;--line:#27272a;--panel:#18181b;--accent:#60a5fa}}
:root[data-theme=dark]{--bg:#101014;--fg:#e4e4e7;--muted:#a1a1aa;--line:#27272a;
--panel:#18181b;--accent:#60a5fa}
body{margin:0;padding:16px 20px;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 8px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted)}.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0}
.tile{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:var(--panel);
min-width:110px}.tile b{display:block;font-size:18px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td.num,th.num{text-align:right}
.url{min-width:140px;max-width:260px;overflow-wrap:anywhere}.why{min-width:180px}.scroll{overflow-x:auto}
.state{border-radius:4px;padding:1px 6px;font-size:12px;color:#fff;background:var(--muted);
white-space:nowrap}.FINISHED{background:var(--ok)}.FAILED{background:var(--bad)}
.CANCELED,.FINISHEDDIRTY{background:var(--warn)}.ACTIVE,.STARTED,.STAGING,.ARCHIVING{background:var(--run)}
.alert{border:1px solid var(--bad);border-radius:6px;padding:12px 14px;background:var(--panel)}
form{display:flex;gap:8px;flex-wrap:wrap;align-items:end;margin:0 0 8px}
select,button{font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);
border-radius:4px;padding:3px 6px}.charts{display:flex;gap:16px;flex-wrap:wrap}
.charts svg{flex:1 1 360px;max-width:520px;height:auto}td.t{white-space:nowrap}
svg text{fill:var(--muted);font-size:11px}.pager{margin:8px 0;display:flex;gap:12px}
"""
# The tab is a same-origin frame: it takes the mode Airflow's page shows (its root element's
# class, set by the UI's theme switch), else the browser's.
THEME_SCRIPT = (
    "<script>try{var c=parent.document.documentElement.classList,"
    "m=c.contains('dark')?'dark':c.contains('light')?'light':'';"
    "if(m)document.documentElement.dataset.theme=m}catch(e){}</script>"
)


def render_page(
    title: str,
    report: Report,
    filters: Filters,
    page: int,
    per_page: int,
    downloads: str,
) -> str:
    """The whole page of a run (or of one task instance's part of it).

    :param title: what the page is about (the run, or the task instance).
    :param report: the jobs and files to show.
    :param filters: the file table's filters.
    :param page: the table's page, from 1.
    :param per_page: rows per page.
    :param downloads: the path of the file report (``.csv`` / ``.json`` are appended).
    """
    job = filters.job

    def part(name: str, make: Callable[[], str]) -> str:  # the same for every page and filter
        return report.memo((name, job), make)

    def chosen() -> list[FileRow]:
        return report.memo(("files", job), lambda: [f for f in report.files if f.job_id == job])

    files = chosen if job else lambda: report.files
    body = [
        f"<h1>FTS transfers</h1><div class=muted>{escape(title)}</div>",
        part("tiles", lambda: _tiles(report)),
        "<h2>Progress</h2>",
        part("charts", lambda: _charts(files(), job)),
        "<h2>Jobs</h2>",
        _jobs_table(report.jobs),
        "<h2>Failures by reason</h2>",
        part("failures", lambda: _failures(files(), filters)),
        "<h2>Files</h2>",
        _files(report, filters, page, per_page, downloads),
    ]
    return _shell(body, refresh=report.active)


def render_unavailable(title: str, error: Unavailable) -> str:
    """The page when FTS cannot be read: what happened and what to do, and a retry soon."""
    body = [
        f"<h1>FTS transfers</h1><div class=muted>{escape(title)}</div>",
        "<div class=alert role=alert><b>FTS cannot be read from the Airflow API server.</b>"
        f"<p>{escape(error.problem)}</p><p><b>What to do:</b> {escape(error.fix)}</p>"
        f"<p class=muted>This page tries again every {REFRESH_SECONDS} s.</p></div>",
    ]
    return _shell(body, refresh=True)


def _shell(body: Sequence[str], refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width">'
        f"<title>FTS transfers</title>{meta}{THEME_SCRIPT}<style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def _tiles(report: Report) -> str:
    states = Counter(f.state for f in report.files)
    done = states[FileState.FINISHED]
    failed = states[FileState.FAILED] + states[FileState.CANCELED]
    rate = throughput(report.files)
    tiles = [
        ("Jobs", f"{len(report.jobs)}", "active" if report.active else "all ended"),
        ("Files done", f"{done} / {len(report.files)}", f"{failed} failed or canceled"),
        ("Bytes done", _bytes(sum(f.size for f in report.files if f.state == "FINISHED")), ""),
        ("Throughput", _rate(rate), "first start to last finish"),
    ]
    cells = "".join(
        f"<div class=tile><span class=muted>{name}</span><b>{escape(value)}</b>"
        f"<span class=muted>{escape(note)}</span></div>"
        for name, value, note in tiles
    )
    note = (
        f"<div class=muted>Jobs are active: this page refreshes every {REFRESH_SECONDS} s.</div>"
        if report.active
        else ""
    )
    return f"<div class=tiles>{cells}</div>{note}"


# -- the charts --------------------------------------------------------------------------

W, H, PAD = 480, 160, 30


def _charts(files: list[FileRow], job: str) -> str:
    series = progress(files)
    scope = f"job {job[:8]}" if job else "the whole run"
    if not series:
        return f"<p class=muted>No file of {escape(scope)} has finished yet.</p>"
    starts = [f.start for f in files if f.start is not None]
    t0 = min([*starts, series[0][0]])
    t1 = max(series[-1][0], t0 + 1)
    total_files, total_bytes = series[-1][1], series[-1][2]

    def x(t: float) -> float:
        return PAD + (t - t0) / (t1 - t0) * (W - 2 * PAD)

    def y(value: float, top: float) -> float:
        return H - PAD + 8 - value / max(top, 1) * (H - PAD - 8)

    files_line = " ".join(f"{x(t):.1f},{y(n, total_files):.1f}" for t, n, _ in series)
    bytes_line = " ".join(f"{x(t):.1f},{y(b, total_bytes):.1f}" for t, _, b in series)
    start = f"{x(t0):.1f},{y(0, 1):.1f}"
    progress_svg = (
        f'<svg id=progress viewBox="0 0 {W} {H}" role=img aria-label="Files and bytes done '
        f'over time, {escape(scope)}">{_axes(t0, t1)}'
        f'<polyline fill=none stroke="var(--accent)" stroke-width=2 points="{start} {files_line}"/>'
        f'<polyline fill=none stroke="var(--ok)" stroke-width=1.5 stroke-dasharray="5 3" '
        f'points="{start} {bytes_line}"/>'
        f'<text x="{PAD}" y=12>files done (solid): {total_files}</text>'
        f'<text x="{W - PAD}" y=12 text-anchor=end>bytes done (dashed): '
        f"{escape(_bytes(total_bytes))}</text></svg>"
    )
    return f"<div class=charts>{progress_svg}{_throughput_svg(files, t0, t1, x)}</div>"


def _axes(t0: float, t1: float) -> str:
    base = H - PAD + 8
    return (
        f'<line x1="{PAD}" y1="{base}" x2="{W - PAD}" y2="{base}" stroke="var(--line)"/>'
        f'<line x1="{PAD}" y1="8" x2="{PAD}" y2="{base}" stroke="var(--line)"/>'
        f'<text x="{PAD}" y="{H - 8}">{_clock(t0)}</text>'
        f'<text x="{W - PAD}" y="{H - 8}" text-anchor=end>{_clock(t1)} UTC</text>'
    )


def _throughput_svg(files: list[FileRow], t0: float, t1: float, x) -> str:
    """Bytes finished per second in up to 40 slices of the transfer window."""
    slices = max(1, min(40, int(t1 - t0)))
    width = (t1 - t0) / slices
    moved = [0] * slices
    for f in files:
        if f.state == FileState.FINISHED and f.finish:
            moved[min(slices - 1, int((f.finish - t0) / width))] += f.size
    rates = [m / width for m in moved]
    top = max(rates) or 1
    height = H - PAD
    bars = "".join(
        f'<rect x="{x(t0 + i * width) + 1:.1f}" y="{height + 8 - r / top * (height - 8):.1f}" '
        f'width="{max(1.0, x(t0 + width) - x(t0) - 2):.1f}" height="{r / top * (height - 8):.1f}" '
        'fill="var(--run)"/>'
        for i, r in enumerate(rates)
        if r
    )
    return (
        f'<svg id=throughput viewBox="0 0 {W} {H}" role=img aria-label="Throughput over time">'
        f"{_axes(t0, t1)}{bars}"
        f'<text x="{PAD}" y=12>throughput, peak {escape(_rate(top))}</text></svg>'
    )


# -- the tables --------------------------------------------------------------------------


def _jobs_table(jobs: list[Job]) -> str:
    if not jobs:
        return "<p class=muted>No FTS job found for this run (yet).</p>"
    rows = []
    for job in jobs:
        by = job.made_by
        task = by.task_id + (f"[{by.map_index}]" if by.map_index >= 0 else "")
        tried = f"try {by.try_number}" if by.try_number else "pushed"
        resent = " (resent)" if by.try_number > 1 else ""
        states = ", ".join(f"{n} {s}" for s, n in sorted(job.file_states.items()))
        rows.append(
            f"<tr><td><a href='{escape(job.url)}' target=_blank rel=noopener "
            f"title='{escape(job.job_id)} in FTS monitoring'>{escape(job.job_id[:8])}…</a> "
            f"<a href='?{urlencode({'job': job.job_id})}#files' class=muted>files</a></td>"
            f"<td>{escape(task)}</td><td class=t>{tried}{resent}<br>chunk {by.chunk}</td>"
            f"<td>{_badge(job.state)}</td><td class=num>{job.files}</td><td>{escape(states)}</td>"
            f"<td class='num t'>{escape(_bytes(job.bytes_total))}</td>"
            f"<td class=num>{escape(_rate(job.throughput))}</td>"
            f"<td class=t>{_time(job.submitted)}<br>{_time(job.ended)}</td>"
            f"<td class=url>{escape(job.source_se)} → {escape(job.dest_se)}</td></tr>"
        )
    head = (
        "<tr><th>Job</th><th>Task</th><th>Made by</th><th>State</th><th class=num>Files</th>"
        "<th>Files per state</th><th class=num>Bytes</th><th class=num>Throughput</th>"
        "<th>Submitted<br>ended</th><th>Endpoints</th></tr>"
    )
    return f"<div class=scroll><table id=jobs>{head}{''.join(rows)}</table></div>"


def _failures(files: list[FileRow], filters: Filters) -> str:
    groups = failure_groups(files)
    if not groups:
        return "<p class=muted>No file failed.</p>"
    rows = "".join(
        f"<tr><td>{escape(g.reason)}</td>"
        f"<td>{'recoverable' if g.recoverable else 'not recoverable'}</td>"
        f"<td class=num>{g.files}</td><td><a href='?"
        f"{escape(urlencode(filters._replace(reason=g.reason, state='')._asdict()))}#files'>"
        "show files</a></td></tr>"
        for g in groups
    )
    head = "<tr><th>Reason</th><th>Retry may help</th><th class=num>Files</th><th></th></tr>"
    return f"<table id=failures>{head}{rows}</table>"


def _files(report: Report, filters: Filters, page: int, per_page: int, downloads: str) -> str:
    chosen = filters.match(report.files)
    skipped = (page - 1) * per_page
    rows: list[FileRow] = []
    count = 0
    for row in chosen:  # one pass: count everything, keep only the page
        if skipped <= count < skipped + per_page:
            rows.append(row)
        count += 1
    tried = {j.job_id: j.made_by.try_number for j in report.jobs}
    lines = "".join(
        f"<tr><td class=t>{escape(f.job_id[:8])}…<br>"
        f"<span class=muted>try {tried.get(f.job_id) or '-'}</span></td>"
        f"<td class=num>{f.file_id}</td><td>{_badge(f.state)}</td>"
        f"<td class=url>{escape(f.source)}</td><td class=url>{escape(f.destination)}</td>"
        f"<td class='num t'>{escape(_bytes(f.size))}</td>"
        f"<td class=t>{_time(f.start)}<br>{_time(f.finish)}</td>"
        f"<td class=why>{escape(f.reason)}</td></tr>"
        for f in rows
    )
    head = (
        "<tr><th>Job</th><th class=num>File</th><th>State</th><th>Source</th>"
        "<th>Destination</th><th class=num>Size</th><th>Started<br>finished</th>"
        "<th>Reason</th></tr>"
    )
    query = urlencode(filters._asdict())
    last = max(1, -(-count // per_page))
    return (
        f"<div id=files>{_filter_form(report, filters)}"
        f"<div class=muted>{count} files match; page {page} of {last}. Download: "
        f"<a id=csv href='{escape(downloads)}.csv?{escape(query)}' download>CSV</a> · "
        f"<a id=json href='{escape(downloads)}.json?{escape(query)}' download>JSON</a></div>"
        f"<div class=scroll><table id=file-table>{head}{lines}</table></div>"
        f"{_pager(filters, page, last)}</div>"
    )


def _filter_form(report: Report, filters: Filters) -> str:
    states = report.memo("states", lambda: sorted({f.state for f in report.files}))
    reasons = report.memo("reasons", lambda: sorted({f.reason for f in report.files if f.reason}))
    jobs = [(j.job_id, f"{j.job_id[:8]}… try {j.made_by.try_number}") for j in report.jobs]
    return (
        "<form method=get action='#files'>"
        + _select("state", "State", [(s, s) for s in states], filters.state)
        + _select("reason", "Reason", [(r, r[:60]) for r in reasons], filters.reason)
        + _select("job", "Job", jobs, filters.job)
        + "<button type=submit>Filter</button></form>"
    )


def _select(name: str, label: str, options: list[tuple[str, str]], chosen: str) -> str:
    items = "".join(
        f"<option value='{escape(value)}'{' selected' if value == chosen else ''}>"
        f"{escape(text)}</option>"
        for value, text in options
    )
    return (
        f"<label>{label}<br><select name={name}><option value=''>all</option>{items}"
        "</select></label>"
    )


def _pager(filters: Filters, page: int, last: int) -> str:
    def link(target: int, text: str) -> str:
        query = urlencode({**filters._asdict(), "page": target})
        return f"<a href='?{escape(query)}#files'>{text}</a>"

    parts = [link(1, "&laquo; first")] if page > 1 else []
    parts += [link(page - 1, "&lsaquo; previous")] if page > 1 else []
    parts += [link(page + 1, "next &rsaquo;"), link(last, "last &raquo;")] if page < last else []
    return f"<div class=pager>{''.join(parts)}</div>"


# -- formatting --------------------------------------------------------------------------


def _badge(state: str) -> str:
    return f"<span class='state {escape(state)}'>{escape(state)}</span>"


def _bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _rate(per_second: float | None) -> str:
    return "-" if per_second is None else f"{_bytes(per_second)}/s"


def _time(seconds: float | None) -> str:
    """Month, day and time (UTC), the year in the tooltip: tables stay narrow."""
    if seconds is None:
        return ""
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"<span title='{moment:%Y-%m-%d %H:%M:%S} UTC'>{moment:%m-%d %H:%M:%S}</span>"


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")
