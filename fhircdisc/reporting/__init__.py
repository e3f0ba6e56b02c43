"""Validation results for people: the terminal, a JSON file and a self-contained HTML page.

    from fhircdisc.reporting import print_findings, write_html_report, write_json_report
    print_findings(result, Console())
    write_json_report(result, out / "validation.json")
    write_html_report(result, out / "validation.html", datasets=study.domains)
"""

from fhircdisc.reporting.html import render_html, write_html_report
from fhircdisc.reporting.json_report import json_bytes, write_json_report
from fhircdisc.reporting.terminal import print_findings

__all__ = ["json_bytes", "print_findings", "render_html", "write_html_report",
           "write_json_report"]
