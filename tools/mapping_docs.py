"""Regenerate docs/mappings.md from the domain specs."""

from __future__ import annotations

from pathlib import Path

from fhircdisc.mappings.docs import mapping_markdown

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "mappings.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(mapping_markdown(), encoding="utf-8")
    print(f"wrote {target}")
