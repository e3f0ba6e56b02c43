"""The validation report as one self-contained HTML file.

    from fhircdisc.reporting import write_html_report
    write_html_report(result, "report.html", datasets=study.domains)

Everything is inline: CSS, a small vanilla script for the findings filters, and the
plots as SVG; a Content-Security-Policy forbids the page any request, so it opens
offline and from an e-mail attachment alike. Every piece of text from the result or
the data is HTML-escaped. For a given ``generated`` timestamp the output is byte for
byte the same.

Sections: header (target, kind, metadata, generated), summary (counts per dataset and
severity), rules (status of each run, with the reason for skipped or failed runs),
findings (filter by severity, dataset and free text), then, when ``datasets`` has LB
or VS, the mean result by study day per arm with the subjects faint behind
(:mod:`fhircdisc.reporting.plots`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.reporting.plots import ALL_SUBJECTS, PlotSection, frames, plot_sections
from fhircdisc.reporting.terminal import format_seq, ordered_findings, ordered_runs
from fhircdisc.schemas.findings import SEVERITIES, Finding, RuleRun, ValidationResult

#: Beyond this many findings the HTML table stops (the JSON report has them all).
MAX_HTML_FINDINGS = 5000
STATUSES = ("error", "issues", "skipped", "success")


def _e(value: Any) -> str:
    """Text for HTML, element content or quoted attribute alike."""
    return escape("" if value is None else str(value), quote=True)


def render_html(result: ValidationResult, *, datasets: Mapping[str, Any] | None = None,
                title: str = "fhircdisc validation report", generated: str | None = None,
                max_findings: int = MAX_HTML_FINDINGS) -> str:
    """The report as one HTML document (see the module docstring).

    ``datasets`` (name -> DataFrame, or ``(DataFrame, meta)`` as ``read_sdtm_folder``
    returns them) adds row counts to the summary and, with LB or VS, the plots;
    ``generated`` is the timestamp shown (default: now, UTC).
    """
    if generated is None:
        generated = datetime.now(UTC).isoformat(timespec="seconds")
    data = frames(datasets)
    sections = plot_sections(data) if data else []
    nav = [("summary", "Summary"), ("rules", "Rules"), ("findings", "Findings")]
    nav += [(f"plots-{s.domain}", f"{s.title} ({s.domain})") for s in sections]
    body = [
        _header(result, title, generated, nav),
        '<main>',
        _summary(result, data),
        _rules(result),
        _findings(result, max_findings),
        *(_plots(section) for section in sections),
        '</main>',
        f'<footer>fhircdisc · {_e(result.kind)} validation of {_e(result.target)} · '
        f'generated {_e(generated)}</footer>',
    ]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        '<meta name="generator" content="fhircdisc">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        *body,
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
        "",
    ])


def write_html_report(result: ValidationResult, path: Path | str,
                      datasets: Mapping[str, Any] | None = None, *,
                      title: str = "fhircdisc validation report",
                      generated: str | None = None,
                      max_findings: int = MAX_HTML_FINDINGS) -> Path:
    """Write :func:`render_html` to ``path`` (atomically, UTF-8); return the path."""
    path = Path(path)
    text = render_html(result, datasets=datasets, title=title, generated=generated,
                       max_findings=max_findings)
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


# --- sections ---------------------------------------------------------------------------

def _header(result: ValidationResult, title: str, generated: str,
            nav: list[tuple[str, str]]) -> str:
    worst = result.worst()
    verdict = {"error": "errors found", "warning": "warnings found",
               "notice": "notices only", None: "no findings"}[worst]
    meta = [("target", result.target or "(not named)"), ("kind", result.kind),
            *((str(k), _meta_value(v)) for k, v in result.metadata.items()),
            ("generated", generated)]
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in meta)
    links = "".join(f'<a href="#{_e(anchor)}">{_e(label)}</a>' for anchor, label in nav)
    return (f'<header><div class="title"><h1>{_e(title)}</h1>'
            f'<span class="verdict v-{_e(worst or "none")}">{_e(verdict)}</span></div>'
            f'<dl class="meta">{items}</dl><nav>{links}</nav></header>')


def _meta_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_meta_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(_meta_value(v) for v in items)
    return "" if value is None else str(value)


def _summary(result: ValidationResult, data: Mapping[str, Any]) -> str:
    counts = Counter((f.dataset, f.severity) for f in result.findings)
    rows_of = _row_counts(result, data)
    names = sorted({f.dataset for f in result.findings} | set(rows_of))
    runs: Counter[str] = Counter(r.status for r in result.runs)
    cards: list[tuple[str, str, int]] = [(s, f"{s}s", result.count(s)) for s in SEVERITIES]
    cards.append(("rules", "rules run", len(result.runs)))
    card_html = "".join(
        f'<div class="card c-{_e(key)}"><div class="n">{n}</div><div class="l">{_e(label)}'
        "</div></div>" for key, label, n in cards)
    status_line = " · ".join(
        f'<span class="status s-{s if runs.get(s) else "none"}">{runs.get(s, 0)} {s}</span>'
        for s in STATUSES)
    head = "".join(f'<th class="num">{_e(s)}</th>' for s in SEVERITIES)
    lines = []
    for name in names:
        cells = "".join(_count_cell(counts.get((name, s), 0), s) for s in SEVERITIES)
        total = sum(counts.get((name, s), 0) for s in SEVERITIES)
        rows = rows_of.get(name)
        lines.append(f'<tr><th scope="row">{_e(name)}</th>'
                     f'<td class="num muted">{"" if rows is None else rows}</td>{cells}'
                     f'<td class="num total">{total}</td></tr>')
    totals = "".join(_count_cell(result.count(s), s) for s in SEVERITIES)
    lines.append(f'<tr class="sum"><th scope="row">all</th><td></td>{totals}'
                 f'<td class="num total">{len(result.findings)}</td></tr>')
    return (f'<section id="summary"><h2>Summary</h2><div class="cards">{card_html}</div>'
            f'<p class="statuses">rule runs: {status_line}</p>'
            f'<table class="counts"><thead><tr><th>dataset</th><th class="num">rows</th>{head}'
            f'<th class="num">total</th></tr></thead><tbody>{"".join(lines)}</tbody></table>'
            "</section>")


def _row_counts(result: ValidationResult, data: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    declared = result.metadata.get("datasets")
    if isinstance(declared, Mapping):
        for name, n in declared.items():
            if isinstance(n, int):
                out[str(name)] = n
    for name, df in data.items():
        out[name] = len(df)
    return out


def _count_cell(n: int, severity: str) -> str:
    cls = f"num sev-{severity}" if n else "num zero"
    return f'<td class="{cls}">{n}</td>'


def _rules(result: ValidationResult) -> str:
    if not result.runs:
        return ('<section id="rules"><h2>Rules</h2><p class="muted">No rule runs recorded.'
                "</p></section>")
    runs = ordered_runs(result.runs)
    flagged = [r for r in runs if r.status != "success"]
    passed = [r for r in runs if r.status == "success"]
    parts = ['<section id="rules"><h2>Rules</h2><p class="muted">A rule that could not run is '
             "listed as skipped (with the reason) or error, never as passed.</p>"]
    if flagged:
        parts.append(_rule_table(flagged))
    else:
        parts.append(f'<p class="ok">All {len(runs)} rules ran without findings.</p>')
    if passed:
        parts.append(f"<details{'' if flagged else ' open'}><summary>{len(passed)} rules ran "
                     f"without findings</summary>{_rule_table(passed)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _rule_table(runs: list[RuleRun]) -> str:
    lines = []
    for run in runs:
        reason = f'<span class="reason">{_e(run.reason)}</span>' if run.reason else ""
        rule = (f'<button type="button" class="rule" data-rule="{_e(run.rule_id)}" '
                f'title="show the findings of this rule">{_e(run.rule_id)}</button>'
                if run.findings else f'<span class="mono">{_e(run.rule_id)}</span>')
        lines.append(
            f'<tr class="r-{_e(run.status)}"><td>{rule}</td>'
            f'<td><span class="status s-{_e(run.status)}">{_e(run.status)}</span>{reason}</td>'
            f'<td class="num">{run.findings}</td></tr>')
    return ('<table class="rules"><thead><tr><th>rule</th><th>status</th>'
            f'<th class="num">findings</th></tr></thead><tbody>{"".join(lines)}</tbody>'
            "</table>")


_COLUMNS = ("rule", "severity", "dataset", "row", "USUBJID", "--SEQ", "variable", "value",
            "message")


def _findings(result: ValidationResult, limit: int) -> str:
    findings = ordered_findings(result.findings)
    shown = findings[:max(limit, 0)]
    datasets = sorted({f.dataset for f in findings})
    boxes = "".join(
        f'<label class="sev-{s}"><input type="checkbox" name="sev" value="{s}" checked> '
        f"{s} ({result.count(s)})</label>" for s in SEVERITIES)
    options = "".join(f'<option value="{_e(d)}">{_e(d)}</option>' for d in datasets)
    rules = "".join(f'<option value="{_e(r)}">{_e(r)}</option>'
                    for r in sorted({f.rule_id for f in findings}))
    controls = (
        '<div class="filters" id="filters">'
        f'<fieldset><legend>severity</legend>{boxes}</fieldset>'
        '<label>dataset <select id="f-dataset"><option value="">all</option>'
        f"{options}</select></label>"
        '<label>rule <select id="f-rule"><option value="">all</option>'
        f"{rules}</select></label>"
        '<label class="grow">search <input type="search" id="f-text" '
        'placeholder="rule, subject, variable, value or message"></label>'
        '<button type="button" id="f-reset">reset</button>'
        f'<span id="f-count" class="muted">{len(shown)} of {len(shown)} shown</span>'
        "</div>")
    head = "".join(f"<th>{_e(c)}</th>" for c in _COLUMNS)
    rows = "\n".join(_finding_row(f) for f in shown)
    more = ""
    if len(findings) > len(shown):
        more = (f'<p class="more">... and {len(findings) - len(shown)} more findings not '
                "listed here (see the JSON report).</p>")
    if not findings:
        table = '<p class="ok">No findings.</p>'
    else:
        table = (f'<div class="scroll"><table class="findings" id="findings-table">'
                 f"<thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table></div>"
                 '<p id="f-none" class="muted" hidden>No finding matches the filters.</p>')
    return (f'<section id="findings"><h2>Findings</h2>{controls if findings else ""}'
            f"{table}{more}</section>")


def _finding_row(f: Finding) -> str:
    cells = [
        f'<td class="mono">{_e(f.rule_id)}</td>',
        f'<td><span class="badge b-{_e(f.severity)}">{_e(f.severity)}</span></td>',
        f"<td>{_e(f.dataset)}</td>",
        f'<td class="num">{_e(f.row)}</td>',
        f'<td class="mono">{_e(f.usubjid)}</td>',
        f'<td class="num">{_e(format_seq(f.seq))}</td>',
        f'<td class="mono">{_e(f.variable)}</td>',
        f'<td class="value">{_value(f.value)}</td>',
        f"<td>{_e(f.message)}</td>",
    ]
    return (f'<tr data-sev="{_e(f.severity)}" data-ds="{_e(f.dataset)}" '
            f'data-rule="{_e(f.rule_id)}">{"".join(cells)}</tr>')


def _value(value: str | None) -> str:
    if value is None:
        return '<span class="null">(null)</span>'
    if value == "":
        return '<span class="null">(empty)</span>'
    return f"<code>{_e(value)}</code>"


def _plots(section: PlotSection) -> str:
    figures = []
    for plot in section.plots:
        arms = ", ".join(f"{arm} {n}" for arm, n in plot.arms)
        drawn = ("" if plot.subjects_drawn >= plot.subjects else
                 f"; faint lines for {plot.subjects_drawn} of {plot.subjects} subjects")
        caption = f"subjects with a result: {arms}{drawn}"
        figures.append(
            f'<figure class="plot" data-testcd="{_e(plot.testcd)}">'
            f'<figcaption><span class="code">{_e(plot.testcd)}</span> {_e(plot.test)}'
            f'{f" <span class=unit>({_e(plot.unit)})</span>" if plot.unit else ""}'
            f"</figcaption>{plot.svg}"
            f'<div class="caption">{_e(caption)}</div></figure>')
    by_arm = ("per arm (DM.ARMCD)" if not any(
        arm == ALL_SUBJECTS for p in section.plots for arm, _ in p.arms) else
        "over all subjects (no DM.ARMCD to split by arm)")
    x = section.plots[0].x_label if section.plots else "study day"
    d = section.domain
    intro = (f"Mean {d}STRESN ± 1 standard error by {x} {by_arm}; the faint lines are the "
             "individual subjects, in their arm's colour.")
    notes = "".join(f"<li>{_e(n)}</li>" for n in section.notes)
    return (f'<section id="plots-{_e(d)}" class="plots"><h2>{_e(section.title)} '
            f'<span class="muted">({_e(d)})</span></h2><p class="muted">{_e(intro)}</p>'
            f'<div class="grid">{"".join(figures)}</div>'
            f'{f"<ul class=notes>{notes}</ul>" if notes else ""}</section>')


_CSS = """
:root{--fg:#101828;--muted:#667085;--line:#EAECF0;--bg:#F9FAFB;--card:#fff;
--error:#B42318;--error-bg:#FEF3F2;--warning:#B54708;--warning-bg:#FFFAEB;
--notice:#175CD3;--notice-bg:#EFF8FF;--success:#067647;--success-bg:#ECFDF3;
--skipped:#475467;--skipped-bg:#F2F4F7}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--fg);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:20px 32px 0}
header .title{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
h1{font-size:22px;margin:0}
h2{font-size:18px;margin:0 0 12px}
.verdict{border-radius:999px;padding:2px 12px;font-weight:600;font-size:13px}
.v-error{background:var(--error-bg);color:var(--error)}
.v-warning{background:var(--warning-bg);color:var(--warning)}
.v-notice{background:var(--notice-bg);color:var(--notice)}
.v-none{background:var(--success-bg);color:var(--success)}
dl.meta{display:flex;flex-wrap:wrap;gap:4px 28px;margin:12px 0}
dl.meta div{display:flex;gap:6px}
dt{color:var(--muted)}dd{margin:0;font-weight:500}
nav{display:flex;gap:4px;flex-wrap:wrap}
nav a{padding:8px 12px;color:var(--notice);text-decoration:none;border-bottom:2px solid
transparent}
nav a:hover{border-bottom-color:var(--notice)}
main{padding:8px 32px 24px;max-width:1600px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:18px 20px;margin:16px 0}
.muted{color:var(--muted)}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:8px}
.card{min-width:130px;border-radius:8px;padding:10px 14px;border:1px solid var(--line)}
.card .n{font-size:26px;font-weight:700;line-height:1.1}
.card .l{color:var(--muted)}
.c-error .n{color:var(--error)}.c-warning .n{color:var(--warning)}
.c-notice .n{color:var(--notice)}
.statuses{margin:8px 0 14px}
table{border-collapse:collapse}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;
vertical-align:top}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);
background:#fff;position:sticky;top:0}
.num{text-align:right;font-variant-numeric:tabular-nums}
td.zero{color:#D0D5DD}
td.sev-error{color:var(--error);font-weight:600}
td.sev-warning{color:var(--warning);font-weight:600}
td.sev-notice{color:var(--notice);font-weight:600}
td.total{font-weight:600}
tr.sum th,tr.sum td{border-top:2px solid var(--line);font-weight:600}
.status{display:inline-block;border-radius:4px;padding:0 7px;font-size:12px;font-weight:600}
.s-success{background:var(--success-bg);color:var(--success)}
.s-issues{background:var(--warning-bg);color:var(--warning)}
.s-skipped{background:var(--skipped-bg);color:var(--skipped)}
.s-error{background:var(--error-bg);color:var(--error)}
.s-none{background:none;color:var(--muted);font-weight:400}
.reason{margin-left:8px;color:var(--muted)}
table.rules{min-width:min(760px,100%)}
details{margin-top:10px}
summary{cursor:pointer;color:var(--notice);font-weight:500;padding:4px 0}
details table.rules{margin-top:6px}
button.rule{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:none;
border:0;padding:0;color:var(--notice);cursor:pointer;text-decoration:underline dotted}
.badge{display:inline-block;border-radius:4px;padding:0 7px;font-size:12px;font-weight:600}
.b-error{background:var(--error-bg);color:var(--error)}
.b-warning{background:var(--warning-bg);color:var(--warning)}
.b-notice{background:var(--notice-bg);color:var(--notice)}
.filters{display:flex;gap:12px 20px;align-items:center;flex-wrap:wrap;margin-bottom:12px}
.filters fieldset{border:1px solid var(--line);border-radius:6px;padding:2px 10px;margin:0;
display:flex;gap:12px}
.filters legend{font-size:12px;color:var(--muted)}
.filters .grow{flex:1;min-width:260px;display:flex;gap:6px;align-items:center}
.filters input[type=search]{flex:1;padding:5px 8px;border:1px solid #D0D5DD;border-radius:6px}
.filters select,.filters button{padding:4px 8px;border:1px solid #D0D5DD;border-radius:6px;
background:#fff}
label.sev-error{color:var(--error)}label.sev-warning{color:var(--warning)}
label.sev-notice{color:var(--notice)}
.scroll{max-height:70vh;overflow:auto;border:1px solid var(--line);border-radius:6px}
table.findings{width:100%;font-size:13px}
table.findings tbody tr:hover{background:#F9FAFB}
td.mono,th{white-space:nowrap}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.value{max-width:260px;overflow-wrap:anywhere}
code{background:#F2F4F7;border-radius:3px;padding:0 3px;white-space:pre-wrap}
.null{color:var(--muted);font-style:italic}
.more{font-weight:600}
.ok{color:var(--success);font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px}
figure.plot{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 10px 6px}
figure.plot figcaption{font-weight:600;margin-bottom:2px}
figure.plot .code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:var(--notice-bg);color:var(--notice);border-radius:4px;padding:0 5px}
figure.plot .unit{color:var(--muted);font-weight:400}
figure.plot svg{display:block;width:100%;height:auto}
figure.plot svg *{stroke-linejoin:round;stroke-linecap:butt}
.caption{font-size:12px;color:var(--muted)}
ul.notes{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;padding:0 32px 24px}
@media print{nav,.filters,button.rule{display:none}.scroll{max-height:none;overflow:visible}
section{break-inside:avoid-page}body{background:#fff}}
"""

_JS = """
(function(){
  var table=document.getElementById('findings-table');
  if(!table){return;}
  var rows=Array.prototype.slice.call(table.tBodies[0].rows);
  var texts=rows.map(function(r){return r.textContent.toLowerCase();});
  var boxes=Array.prototype.slice.call(document.querySelectorAll('#filters input[name=sev]'));
  var select=document.getElementById('f-dataset');
  var rule=document.getElementById('f-rule');
  var search=document.getElementById('f-text');
  var count=document.getElementById('f-count');
  var none=document.getElementById('f-none');
  function apply(){
    var sev={};
    boxes.forEach(function(b){sev[b.value]=b.checked;});
    var ds=select.value, rl=rule.value, q=search.value.trim().toLowerCase(), shown=0;
    rows.forEach(function(r,i){
      var ok=sev[r.getAttribute('data-sev')]!==false
        &&(!ds||r.getAttribute('data-ds')===ds)
        &&(!rl||r.getAttribute('data-rule')===rl)
        &&(!q||texts[i].indexOf(q)!==-1);
      r.hidden=!ok;
      if(ok){shown++;}
    });
    count.textContent=shown+' of '+rows.length+' shown';
    none.hidden=shown!==0;
  }
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  select.addEventListener('change',apply);
  rule.addEventListener('change',apply);
  search.addEventListener('input',apply);
  document.getElementById('f-reset').addEventListener('click',function(){
    boxes.forEach(function(b){b.checked=true;});
    select.value='';rule.value='';search.value='';apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll('button.rule'),function(b){
    b.addEventListener('click',function(){
      var id=b.getAttribute('data-rule');
      rule.value=Array.prototype.some.call(rule.options,function(o){return o.value===id;})?id:'';
      apply();
      document.getElementById('findings').scrollIntoView();
    });
  });
})();
"""
