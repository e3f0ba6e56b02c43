"""Shared fixtures: the demo trial converted once, and the reference data in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

#: (format, FHIR version, domain) -> share of identical cells after SDTM -> FHIR -> SDTM
ROUND_TRIP_SHARES: dict[tuple[str, str, str], float] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not ROUND_TRIP_SHARES:
        return
    terminalreporter.section("SDTM -> FHIR -> SDTM: identical cells (CDISC pilot)")
    runs = sorted({(f, v) for f, v, _ in ROUND_TRIP_SHARES})
    domains = sorted({d for _, _, d in ROUND_TRIP_SHARES})
    terminalreporter.write_line("format  version  " + "  ".join(f"{d:>8}" for d in domains))
    for fmt, version in runs:
        cells = [ROUND_TRIP_SHARES.get((fmt, version, d)) for d in domains]
        terminalreporter.write_line(f"{fmt:<7} {version:<8} " + "  ".join(
            f"{c:>8.2%}" if c is not None else f"{'-':>8}" for c in cells))


def shared(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (CI provides ../shared/data)")
    return path


@pytest.fixture(scope="session")
def demo_bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fhircdisc.examples.demo_trial import write_demo_bundle

    return write_demo_bundle(tmp_path_factory.mktemp("demo") / "bundle.json")


@pytest.fixture(scope="session")
def demo_study(demo_bundle_path: Path):
    from fhircdisc import to_sdtm
    from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY

    return to_sdtm([demo_bundle_path], terminology=[DEMO_TERMINOLOGY])
