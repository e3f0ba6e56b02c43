"""Shared fixtures: the demo trial converted once, and the reference data in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


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
