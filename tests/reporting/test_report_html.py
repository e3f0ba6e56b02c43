"""Validation reports: the self-contained HTML page, the JSON file and the terminal output."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from fhircdisc.reporting import (
    json_bytes,
    print_findings,
    render_html,
    write_html_report,
    write_json_report,
)
from fhircdisc.schemas.findings import Finding, RuleRun, ValidationResult

GENERATED = "2025-01-01T00:00:00+00:00"
XSS = "<script>alert(1)</script>"
SVG_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
LB_TESTS = {"CRP", "IFNG", "INTLK10", "INTLK17", "INTLK1B", "INTLK6", "TGFB1", "TNF"}


def _result() -> ValidationResult:
    findings = [
        Finding("FC-T-0001", "error", "AE", "Required variable AEDECOD is null", row=3,
                usubjid="UCMSC-ARDS-01-004", seq=2.0, variable="AEDECOD", value=None),
        Finding("FC-T-0002", "warning", "LB", f"Unexpected result {XSS}", row=7,
                usubjid="UCMSC-ARDS-01-001", seq=7.0, variable="LBORRES", value=XSS),
        Finding("FC-T-0003", "notice", "VS", "Unit [bold]as written[/bold]", row=1,
                usubjid="UCMSC-ARDS-01-002", seq=1.0, variable="VSORRESU", value="[red]x"),
    ]
    runs = [
        RuleRun("FC-T-0001", "issues", 1), RuleRun("FC-T-0002", "issues", 1),
        RuleRun("FC-T-0003", "issues", 1), RuleRun("FC-T-0004", "success"),
        RuleRun("FC-T-0005", "skipped", reason="no SUPPQUAL dataset"),
        RuleRun("FC-T-0006", "error", reason="check failed: KeyError 'LBSTRESN'"),
    ]
    return ValidationResult(target="demo study", kind="sdtm", findings=findings, runs=runs,
                            metadata={"standard": "SDTMIG 3.4", "rules": 6})


@pytest.fixture(scope="module")
def report(demo_study) -> str:
    return render_html(_result(), datasets=demo_study.domains, generated=GENERATED)


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}"')
    return html[start:html.index("</section>", start)]


def test_html_shows_header_counts_rules_and_findings(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    header = report[report.index("<header>"):report.index("</header>")]
    for text in ("demo study", "sdtm", "SDTMIG 3.4", GENERATED):
        assert text in header
    summary = _section(report, "summary")
    # One finding per severity; AE, LB and VS each have one; DM has rows but none.
    assert re.search(r"<th scope=\"row\">AE</th><td[^>]*>11</td>"
                     r"<td class=\"num sev-error\">1</td>", summary)
    assert re.search(r"<th scope=\"row\">DM</th><td[^>]*>20</td>"
                     r"(<td class=\"num zero\">0</td>){3}", summary)
    assert 'class="num total">3</td>' in summary
    rules = _section(report, "rules")
    assert "no SUPPQUAL dataset" in rules and "check failed: KeyError" in rules
    assert 's-skipped">skipped' in rules and 's-error">error' in rules
    findings = _section(report, "findings")
    assert findings.count("<tr data-sev=") == 3
    for rule_id in ("FC-T-0001", "FC-T-0002", "FC-T-0003"):
        assert f'data-rule="{rule_id}"' in findings
    assert "UCMSC-ARDS-01-004" in findings and "Required variable AEDECOD is null" in findings
    assert 'id="f-dataset"' in findings and 'name="sev" value="error"' in findings


def test_html_escapes_user_values(report: str) -> None:
    assert XSS not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    # The only scripts are the page's own inline one.
    assert report.count("<script") == 1


def test_one_plot_per_lab_test(report: str, demo_study) -> None:
    lab = _section(report, "plots-LB")
    codes = re.findall(r'<figure class="plot" data-testcd="([^"]+)"', lab)
    assert len(codes) == 8
    assert set(codes) == LB_TESTS == set(demo_study.domains["LB"]["LBTESTCD"].dropna())
    assert lab.count("<svg") == 8
    for code in LB_TESTS:
        assert f'<span class="code">{code}</span>' in lab
    assert "study day (LBDY)" in lab and "per arm (DM.ARMCD)" in lab
    assert "CTRL 10, MSC 10" in lab
    vitals = _section(report, "plots-VS")
    assert vitals.count('<figure class="plot"') == demo_study.domains["VS"]["VSTESTCD"].nunique()


def test_html_is_self_contained(report: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc=", report)
    assert not re.search(r"<link[^>]*\bhref=", report)
    assert not re.search(r"<img[^>]*\bsrc=\"(?!data:)", report)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", report))
    assert urls <= SVG_NAMESPACES
    assert "Content-Security-Policy" in report and "default-src 'none'" in report
    # Inline SVGs share one document: every id is unique.
    ids = re.findall(r'\bid="([^"]+)"', report)
    assert len(ids) == len(set(ids))
    assert len(report.encode("utf-8")) < 3_000_000


def test_html_is_deterministic(report: str, demo_study, tmp_path) -> None:
    frames = {name: (df, None) for name, df in demo_study.domains.items()}  # as read from disk
    path = write_html_report(_result(), tmp_path / "report.html", datasets=frames,
                             generated=GENERATED)
    assert path.read_text(encoding="utf-8") == report


def test_html_without_datasets_or_findings() -> None:
    empty = ValidationResult(target="x", kind="sdtm", runs=[RuleRun("R1", "success")])
    html = render_html(empty, generated=GENERATED)
    assert "No findings." in html and "<svg" not in html and "plots-LB" not in html
    assert "All 1 rules ran without findings." in html


def test_lab_plots_without_arms_or_study_days(demo_study) -> None:
    lb = demo_study.domains["LB"].drop(columns=["LBDY"])
    html = render_html(_result(), datasets={"LB": lb}, generated=GENERATED)
    lab = _section(html, "plots-LB")
    assert lab.count('<figure class="plot"') == 8
    assert "visit (VISITNUM)" in lab and "all subjects" in lab


def test_json_report_round_trips(tmp_path) -> None:
    result = _result()
    path = write_json_report(result, tmp_path / "out" / "validation.json")
    data = path.read_bytes()
    assert json.loads(data) == result.to_dict()
    assert data == json_bytes(result) and data.endswith(b"}\n")
    assert b'\n  "target": "demo study"' in data  # indented by 2
    write_json_report(result, path)
    assert path.read_bytes() == data


def test_terminal_lists_findings_up_to_the_limit() -> None:
    console = Console(record=True, width=160, color_system=None)
    print_findings(_result(), console, limit=2)
    text = console.export_text()
    assert "FC-T-0001" in text and "FC-T-0002" in text
    assert "FC-T-0003" not in text.split("... and")[0]
    assert "... and 1 more (see the JSON/HTML report)" in text
    assert XSS in text and "UCMSC-ARDS-01-004" in text
    # Rules that could not run are shown with their status and reason, not as passed.
    assert "FC-T-0005" in text and "no SUPPQUAL dataset" in text
    assert "FC-T-0006" in text and "KeyError" in text
    assert "1 success, 3 issues, 1 skipped, 1 error" in text


def test_terminal_prints_user_text_literally() -> None:
    console = Console(record=True, width=160, color_system=None)
    print_findings(_result(), console)
    text = console.export_text()
    assert "[red]x" in text and "Unit [bold]as written[/bold]" in text
    assert "... and" not in text


def test_terminal_fits_a_narrow_console() -> None:
    console = Console(record=True, width=80, color_system=None)
    print_findings(_result(), console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for rule_id in ("FC-T-0001", "FC-T-0002", "FC-T-0003"):
        assert rule_id in text
    assert "UCMSC-ARDS-01-004 seq 2" in text and "value: (null)" in text
