"""`fhircdisc package`: the demo trial as an eCTD-style submission package, and --verify."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyreadstat
import pytest
from click.testing import CliRunner

from fhircdisc.cli_package import package_command
from fhircdisc.converters.datasets import read_sdtm_folder, write_dataset
from fhircdisc.errors import InputError
from fhircdisc.packaging import (
    CHECKSUMS_NAME,
    MANIFEST_NAME,
    PackageRefused,
    build_package,
    ectd_folder_name,
    verify_package,
)
from fhircdisc.schemas.define import validate_define, validate_define_xsd

STAMP = "2020-09-30T12:00:00"
SDTM = Path("m5", "datasets", "ucmsc-ards", "tabulations", "sdtm")
DOMAINS = ("ae", "dm", "ex", "lb", "ts", "vs")
XPT_V5_LIBRARY_HEADER = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"


def _run(*args: str):
    return CliRunner().invoke(package_command, list(args))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def demo_sdtm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fhircdisc.examples.demo_run import run_demo

    return run_demo(tmp_path_factory.mktemp("demo")).sdtm_dir


@pytest.fixture(scope="session")
def package(demo_sdtm: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("pkg") / "submission"
    return build_package(demo_sdtm, out, dataset_json=True, force=True, creation_datetime=STAMP)


@pytest.fixture
def copy(package, tmp_path: Path) -> Path:
    """A private copy of the package, to tamper with."""
    return Path(shutil.copytree(package.root, tmp_path / "copy"))


# ----------------------------------------------------------------------------- the tree


def test_tree_has_lower_case_datasets_define_and_reports(package):
    sdtm = package.root / SDTM
    assert package.sdtm_dir == sdtm
    assert package.study_id == "UCMSC-ARDS"
    names = {p.name for p in sdtm.iterdir()}
    assert names == {f"{d}.xpt" for d in DOMAINS} | {
        "define.xml", "validation-report.html", "validation-report.json", "dataset-json"}
    assert {p.name for p in (sdtm / "dataset-json").iterdir()} == {f"{d}.json" for d in DOMAINS}
    assert {p.name for p in package.root.iterdir()} == {"m5", MANIFEST_NAME, CHECKSUMS_NAME}
    assert all(part == part.lower() for f in package.files for part in f.split("/"))
    assert not list(package.root.parent.glob(".*staging"))        # no staging left behind


def test_every_xpt_rereads_as_v5_with_the_domain_name_and_the_source_rows(package, demo_sdtm):
    source = read_sdtm_folder(demo_sdtm)
    for domain in DOMAINS:
        path = package.root / SDTM / f"{domain}.xpt"
        assert path.read_bytes()[:80].startswith(XPT_V5_LIBRARY_HEADER)
        frame, meta = pyreadstat.read_xport(str(path))
        assert meta.table_name == domain.upper()
        assert len(frame) == len(source[domain.upper()][0]) == package.datasets[domain.upper()]


def test_define_xml_is_valid_against_the_xsd_and_matches_the_data(package):
    define = package.root / SDTM / "define.xml"
    assert validate_define_xsd(define) == []
    packaged = read_sdtm_folder(package.root / SDTM)
    assert validate_define(define, packaged).count("error") == 0


def test_report_lists_the_forced_errors_with_package_relative_paths(package):
    report = json.loads((package.root / SDTM / "validation-report.json").read_text())
    assert package.forced
    assert report["counts"]["error"] == 2
    assert {f["rule_id"] for f in report["findings"] if f["severity"] == "error"} == {
        "FC-SD-0002"}
    assert report["target"] == SDTM.as_posix()
    assert report["metadata"]["define"] == (SDTM / "define.xml").as_posix()
    html = (package.root / SDTM / "validation-report.html").read_text()
    assert "staging" not in html and str(package.root.parent) not in html


# ----------------------------------------------------------------------------- manifest


def test_manifest_lists_every_file_and_verifies(package):
    manifest = json.loads((package.root / MANIFEST_NAME).read_text())
    on_disk = set(_tree(package.root)) - {MANIFEST_NAME, CHECKSUMS_NAME}
    listed = [f["path"] for f in manifest["files"]]
    assert listed == sorted(on_disk)
    assert manifest["created"] == STAMP and manifest["study_id"] == "UCMSC-ARDS"
    assert manifest["tool"]["name"] == "fhircdisc"
    for entry in manifest["files"]:
        assert entry["bytes"] == (package.root / entry["path"]).stat().st_size
    result = verify_package(package.root)
    assert result.ok and result.checked == len(listed)
    assert result.manifest_sha256 == package.manifest.sha256
    cli = _run("--verify", str(package.root))
    assert cli.exit_code == 0, cli.output
    assert f"all {len(listed)} file(s)" in cli.output


def test_sha256sum_checks_the_package(package):
    tool = shutil.which("sha256sum")
    if tool is None:
        pytest.skip("sha256sum is not installed")
    run = subprocess.run([tool, "-c", "--quiet", CHECKSUMS_NAME], cwd=package.root,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_one_changed_byte_fails_verify_naming_the_file(copy):
    lb = copy / SDTM / "lb.xpt"
    data = bytearray(lb.read_bytes())
    data[len(data) // 2] ^= 0x01
    lb.write_bytes(bytes(data))
    result = verify_package(copy)
    assert not result.ok
    assert result.changed == [(SDTM / "lb.xpt").as_posix()]
    assert result.missing == [] and result.extra == []
    cli = _run("--verify", str(copy))
    assert cli.exit_code == 1
    assert f"changed: {(SDTM / 'lb.xpt').as_posix()}" in cli.stderr


def test_deleted_and_added_files_are_missing_and_extra(copy):
    (copy / SDTM / "define.xml").unlink()
    (copy / SDTM / "notes.txt").write_text("added after the handover\n")
    result = verify_package(copy)
    assert result.missing == [(SDTM / "define.xml").as_posix()]
    assert result.extra == [(SDTM / "notes.txt").as_posix()]
    assert result.changed == []
    cli = _run("--verify", str(copy))
    assert cli.exit_code == 1
    assert "missing: " in cli.stderr and "extra: " in cli.stderr


def test_edited_checksums_file_is_reported(copy):
    path = copy / CHECKSUMS_NAME
    path.write_text(path.read_text().replace("  m5/", "  M5/", 1))
    assert verify_package(copy).changed == [CHECKSUMS_NAME]


def test_a_manifest_pointing_outside_the_package_is_refused(copy):
    path = copy / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="unsafe path"):
        verify_package(copy)
    cli = _run("--verify", str(copy))
    assert cli.exit_code == 2 and "unsafe path" in cli.stderr


def test_verify_a_folder_without_manifest_exits_2(tmp_path):
    cli = _run("--verify", str(tmp_path))
    assert cli.exit_code == 2
    assert "no manifest.json" in cli.stderr and "Traceback" not in cli.output


# ----------------------------------------------------------------------------- refusal, CLI


def test_demo_is_refused_without_force_and_nothing_is_written(demo_sdtm, tmp_path):
    out = tmp_path / "submission"
    cli = _run(str(demo_sdtm), "-o", str(out), "--creation-datetime", STAMP)
    assert cli.exit_code == 1, cli.output
    assert "2 error(s)" in cli.stderr and "FC-SD-0002" in cli.stderr
    assert "--force" in cli.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []                         # no staging left behind
    with pytest.raises(PackageRefused) as refused:
        build_package(demo_sdtm, out, creation_datetime=STAMP)
    assert refused.value.errors == 2 and refused.value.by_rule == {"FC-SD-0002": 2}


def test_force_packages_the_demo_from_the_cli(demo_sdtm, tmp_path):
    out = tmp_path / "submission"
    out.mkdir()                                                   # empty: allowed
    cli = _run(str(demo_sdtm), "-o", str(out), "--force", "--creation-datetime", STAMP)
    assert cli.exit_code == 0, cli.output
    assert "packaged study UCMSC-ARDS: 6 dataset(s)" in cli.stdout
    assert "--force" in cli.stdout
    assert verify_package(out).ok


def test_same_input_and_stamp_give_byte_identical_packages(package, demo_sdtm, tmp_path):
    again = build_package(demo_sdtm, tmp_path / "again", dataset_json=True, force=True,
                          creation_datetime=STAMP)
    first, second = _tree(package.root), _tree(again.root)
    assert list(first) == list(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []


@pytest.mark.parametrize("make", ["empty", "text", "missing"])
def test_a_folder_without_sdtm_datasets_exits_2(tmp_path, make):
    source = tmp_path / "not-sdtm"
    if make != "missing":
        source.mkdir()
    if make == "text":
        (source / "readme.txt").write_text("hello\n")
        (source / "bundle.json").write_text('{"resourceType": "Bundle"}\n')
    cli = _run(str(source), "-o", str(tmp_path / "out"))
    assert cli.exit_code == 2, cli.output
    assert cli.stderr.startswith("error: ") and cli.stderr.count("\n") == 1
    assert "Traceback" not in cli.output
    assert not (tmp_path / "out").exists()


def test_a_non_empty_output_folder_is_not_overwritten(demo_sdtm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    cli = _run(str(demo_sdtm), "-o", str(out), "--force")
    assert cli.exit_code == 2 and "not empty" in cli.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_creation_datetime_and_bad_arguments_exit_2(demo_sdtm, tmp_path):
    bad = _run(str(demo_sdtm), "-o", str(tmp_path / "o"), "--creation-datetime", "30/09/2020")
    assert bad.exit_code == 2 and "ISO 8601" in bad.stderr
    assert _run().exit_code == 2
    assert _run(str(demo_sdtm)).exit_code == 2                   # no -o
    assert _run(str(demo_sdtm), "--verify", str(tmp_path)).exit_code == 2


def test_datasets_of_two_studies_are_refused(demo_sdtm, tmp_path):
    datasets = read_sdtm_folder(demo_sdtm)
    folder = tmp_path / "mixed"
    folder.mkdir()
    dm, dm_meta = datasets["DM"]
    ts, ts_meta = datasets["TS"]
    ts = ts.copy()
    ts["STUDYID"] = "OTHER-STUDY"
    write_dataset(dm, folder, dm_meta, "xpt", creation_datetime=STAMP)
    write_dataset(ts, folder, ts_meta, "xpt", creation_datetime=STAMP)
    with pytest.raises(InputError, match="more than one study"):
        build_package(folder, tmp_path / "out", force=True)
    assert not (tmp_path / "out").exists()


def test_ectd_folder_names():
    assert ectd_folder_name("UCMSC-ARDS") == "ucmsc-ards"
    assert ectd_folder_name("CDISC01 / Pilot_2") == "cdisc01-pilot-2"
    with pytest.raises(InputError):
        ectd_folder_name("__")
