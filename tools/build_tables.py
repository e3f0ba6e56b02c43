#!/usr/bin/env python3
"""Regenerate the package's SDTM metadata tables and check the terminology tables.

Writes, from the reference data in ``--shared`` (default ``../shared/data`` relative to
the project root):

* ``fhircdisc/schemas/sdtmig_3_4_variables.csv`` - SDTMIG v3.4 variables of DM, EX, LB,
  VS, AE, TS and SUPPQUAL (from ``sdtmig-3.4-metadata/Variables.csv``);
* ``fhircdisc/schemas/sdtmig_3_4_datasets.csv`` - the same datasets (``Datasets.csv``);
* ``fhircdisc/schemas/ct_subset.csv`` - every term of the CDISC CT codelists those
  variables reference, plus the codelists the terminology tables use
  (``sdtm-terminology/SDTM_Terminology_2025-03-28.txt``).

Then checks every CSV under ``fhircdisc/mappings/terminology/`` against that CT subset
(submission values, NCI codes, test names, attribute values, preferred flags) and exits
with status 1, listing every problem, if anything is wrong.

Standard library only. Output is deterministic (no timestamps), so a re-run reproduces
the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "tools/build_tables.py"

DATASETS = ("DM", "EX", "LB", "VS", "AE", "TS", "SUPPQUAL")
VARIABLES_SRC = "sdtmig-3.4-metadata/Variables.csv"
DATASETS_SRC = "sdtmig-3.4-metadata/Datasets.csv"
CT_SRC = "sdtm-terminology/SDTM_Terminology_2025-03-28.txt"
CT_RELEASE = "2025-03-28"

VARIABLES_OUT = "sdtmig_3_4_variables.csv"
DATASETS_OUT = "sdtmig_3_4_datasets.csv"
CT_OUT = "ct_subset.csv"

# Terminology table role -> CDISC codelist C-code (None: no CDISC codelist).
TABLE_CODELIST: dict[str, str | None] = {
    "SEX": "C66731",
    "RACE": "C74457",
    "ETHNIC": "C66790",
    "COUNTRY": None,  # ISO 3166-1 alpha-3; CDISC CT 2025-03-28 has no COUNTRY codelist
    "ROUTE": "C66729",
    "DOSFRM": "C66726",
    "UNIT": "C71620",
    "LBTEST": "C65047",
    "VSTEST": "C66741",
    "NRIND": "C78736",
    "SPEC": "C78734",
    "VSPOS": "C71148",
    "LOC": "C74456",
    "AESEV": "C66769",
    "AESER": "C66742",
    "AEOUT": "C66768",
    "AEREL": None,  # sponsor-defined: no CDISC codelist
    "AEACN": "C66767",
    "TPHASE": "C66737",
    "STYPE": "C99077",
    "TTYPE": "C66739",
}
# --TESTCD codelist -> --TEST codelist (decode of LBTEST / VSTEST rows).
TEST_NAME_CODELIST = {"C65047": "C67154", "C66741": "C67153"}
# attribute key -> codelist its value must come from
ATTRIBUTE_CODELIST = {
    "LBSPEC": "C78734",  # SPECTYPE
    "LBMETHOD": "C85492",  # METHOD
    "VSLOC": "C74456",  # LOC
    "LAT": "C99073",  # LAT
    "VSORRESU": "C66770",  # VSRESU
}
# Codelists kept in ct_subset.csv besides those the SDTMIG variables reference.
EXTRA_CODELISTS = (
    "C71620", "C65047", "C67154", "C66741", "C67153", "C66729", "C66726", "C66731",
    "C74457", "C66790", "C78736", "C66769", "C66742", "C66768", "C66767", "C66737",
    "C66739", "C99077", "C71148", "C74456", "C78734", "C66781", "C66738", "C67152", "C99073",
    "C85492", "C66770",
)

TERMINOLOGY_HEADER = ["table", "system", "code", "display", "submission_value", "decode",
                      "nci_code", "preferred", "attributes"]
CT_HEADER = ["codelist", "codelist_name", "extensible", "submission_value", "nci_code",
             "synonyms", "preferred_term"]
UCUM = "http://unitsofmeasure.org"
ISO3166 = "urn:iso:std:iso:3166"


class BuildError(Exception):
    """Input data missing or not in the expected shape."""


# ----------------------------------------------------------------------------- reading
def _read_dicts(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise BuildError(f"missing source file: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def read_ct(path: Path) -> tuple[dict[str, list[str]], list[list[str]]]:
    """Return (codelist header rows by C-code, term rows in file order)."""
    if not path.is_file():
        raise BuildError(f"missing source file: {path}")
    codelists: dict[str, list[str]] = {}
    terms: list[list[str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    header = lines[0].rstrip("\r").split("\t")
    if header[:2] != ["Code", "Codelist Code"] or len(header) != 8:
        raise BuildError(f"{path}: unexpected header {header}")
    for n, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        cols = line.split("\t")
        if len(cols) != 8:
            raise BuildError(f"{path}:{n}: expected 8 tab-separated columns, got {len(cols)}")
        if cols[1]:
            terms.append(cols)
        else:
            codelists[cols[0]] = cols
    return codelists, terms


# ----------------------------------------------------------------------------- writing
def _csv_text(comments: list[str], header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    for c in comments:
        buf.write(f"# {c}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def build_schemas(shared: Path) -> dict[str, str]:
    """Return {file name: text} for the three generated schema tables."""
    variables = [r for r in _read_dicts(shared / VARIABLES_SRC) if r["Dataset Name"] in DATASETS]
    datasets = [r for r in _read_dicts(shared / DATASETS_SRC) if r["Dataset Name"] in DATASETS]
    found = {r["Dataset Name"] for r in datasets}
    missing = [d for d in DATASETS if d not in found or
               not any(v["Dataset Name"] == d for v in variables)]
    if missing:
        raise BuildError(f"datasets not found in SDTMIG metadata: {missing}")
    for r in variables + datasets:
        if r["Version"] != "SDTMIG v3.4":
            raise BuildError(f"unexpected Version {r['Version']!r} in SDTMIG metadata")

    order = {d: i for i, d in enumerate(DATASETS)}
    variables.sort(key=lambda r: (order[r["Dataset Name"]], int(r["Variable Order"])))
    datasets.sort(key=lambda r: order[r["Dataset Name"]])
    var_rows = [[r["Dataset Name"], r["Variable Order"], r["Variable Name"],
                 r["Variable Label"], r["Type"], r["Core"],
                 r["CDISC CT Codelist Code(s)"], r["Role"]] for r in variables]
    ds_rows = [[r["Dataset Name"], r["Dataset Label"], r["Class"], r["Structure"]]
               for r in datasets]

    head = [
        f"Source: {VARIABLES_SRC} and {DATASETS_SRC} (CDISC SDTMIG v3.4, CDISC Library",
        "export layout; reference data under shared/data, see its MANIFEST.md).",
        f"Datasets: {', '.join(DATASETS)}.",
        f"Generated by {SCRIPT}; do not edit by hand.",
    ]
    var_text = _csv_text(
        ["SDTMIG v3.4 variable metadata.", *head,
         "codelist = CDISC CT codelist C-code(s) as in the source; core = Req/Exp/Perm."],
        ["dataset", "order", "name", "label", "type", "core", "codelist", "role"], var_rows)
    ds_text = _csv_text(["SDTMIG v3.4 dataset metadata.", *head],
                        ["dataset", "label", "class", "structure"], ds_rows)

    referenced: set[str] = set(EXTRA_CODELISTS)
    for r in variables:
        for code in re.split(r"[;,\s]+", r["CDISC CT Codelist Code(s)"]):
            if code:
                referenced.add(code)
    codelists, terms = read_ct(shared / CT_SRC)
    unknown = sorted(referenced - set(codelists))
    if unknown:
        raise BuildError(f"codelists not in {CT_SRC}: {unknown}")
    keep = sorted(referenced, key=lambda c: int(c[1:]))
    by_codelist: dict[str, list[list[str]]] = defaultdict(list)
    for t in terms:
        if t[1] in referenced:
            by_codelist[t[1]].append(t)
    ct_rows = []
    for code in keep:
        cl = codelists[code]
        for t in by_codelist[code]:
            # Code, Codelist Code, Extensible, Codelist Name, Submission Value, Synonyms,
            # Definition, NCI Preferred Term
            ct_rows.append([code, cl[3], cl[2], t[4], t[0], t[5], t[7]])
    ct_text = _csv_text([
        f"CDISC SDTM Controlled Terminology, NCI EVS release {CT_RELEASE} (subset).",
        f"Source: {CT_SRC} (shared/data, see its MANIFEST.md).",
        "Codelists: every codelist referenced by the SDTMIG v3.4 variables of "
        f"{', '.join(DATASETS)},",
        "plus those used by fhircdisc/mappings/terminology/ "
        f"({', '.join(sorted(EXTRA_CODELISTS, key=lambda c: int(c[1:])))}).",
        "extensible = the codelist's 'Codelist Extensible (Yes/No)'; synonyms ;-separated.",
        f"Generated by {SCRIPT}; do not edit by hand.",
    ], CT_HEADER, ct_rows)
    return {VARIABLES_OUT: var_text, DATASETS_OUT: ds_text, CT_OUT: ct_text}


# ----------------------------------------------------------------------------- checking
def parse_ct_subset(text: str) -> dict[str, dict]:
    """{codelist: {"extensible": str, "terms": {submission_value: nci_code},
    "by_code": {nci_code: submission_value}}} from ct_subset.csv text."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    out: dict[str, dict] = {}
    for r in csv.DictReader(lines):
        cl = out.setdefault(r["codelist"], {"extensible": r["extensible"], "terms": {},
                                            "by_code": {}})
        cl["terms"][r["submission_value"]] = r["nci_code"]
        cl["by_code"][r["nci_code"]] = r["submission_value"]
    return out


def parse_attributes(value: str) -> dict[str, str]:
    """'K=V;K2=V2' -> {K: V, K2: V2}; raises ValueError on a malformed item."""
    attrs: dict[str, str] = {}
    for item in value.split(";") if value else []:
        key, sep, val = item.partition("=")
        if not sep or not key or not val:
            raise ValueError(f"attribute {item!r} is not KEY=VALUE")
        attrs[key] = val
    return attrs


def read_terminology(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [ln for ln in fh.read().splitlines() if not ln.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader, [])
    rows = [dict(zip(header, r, strict=False)) for r in reader if r]
    return header, rows


def check_terminology(term_dir: Path, ct: dict[str, dict]) -> list[str]:
    """Return a list of problems (empty when every table is consistent with the CT)."""
    problems: list[str] = []
    files = sorted(term_dir.glob("*.csv"))
    if not files:
        return [f"no terminology tables in {term_dir}"]
    all_rows: list[tuple[str, dict[str, str]]] = []
    for path in files:
        header, rows = read_terminology(path)
        if header != TERMINOLOGY_HEADER:
            problems.append(f"{path.name}: header {header} != {TERMINOLOGY_HEADER}")
            continue
        all_rows += [(f"{path.name}:{r['table']}:{r['code']}", r) for r in rows]

    ucum_units = {r["code"] for _, r in all_rows
                  if r["table"] == "UNIT" and r["system"] == UCUM}
    keys: Counter[tuple[str, str, str]] = Counter()
    preferred: Counter[tuple[str, str]] = Counter()
    values: set[tuple[str, str]] = set()
    for where, r in all_rows:
        table, sv = r["table"], r["submission_value"]
        keys[(table, r["system"], r["code"])] += 1
        values.add((table, sv))
        if r["preferred"] not in ("Y", ""):
            problems.append(f"{where}: preferred must be 'Y' or blank, not {r['preferred']!r}")
        if r["preferred"] == "Y":
            preferred[(table, sv)] += 1
        if table not in TABLE_CODELIST:
            problems.append(f"{where}: unknown table {table!r}")
            continue
        if ":" not in r["system"]:
            problems.append(f"{where}: system {r['system']!r} is not a URI")
        if not r["code"] or not sv:
            problems.append(f"{where}: empty code or submission_value")
        try:
            attrs = parse_attributes(r["attributes"])
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        codelist = TABLE_CODELIST[table]
        if table == "COUNTRY":
            if not re.fullmatch(r"[A-Z]{3}", sv):
                problems.append(f"{where}: COUNTRY {sv!r} is not ISO 3166-1 alpha-3")
            if r["system"] != ISO3166 or not re.fullmatch(r"[A-Z]{2,3}", r["code"]):
                problems.append(f"{where}: COUNTRY code must be ISO 3166-1 alpha-2/3 in "
                                f"{ISO3166}")
            elif len(r["code"]) == 3 and r["code"] != sv:
                problems.append(f"{where}: alpha-3 code {r['code']} maps to {sv}")
        elif attrs.get("sponsor") == "Y":
            if codelist and ct.get(codelist, {}).get("extensible") != "Yes":
                problems.append(f"{where}: sponsor value in non-extensible codelist "
                                f"{codelist}")
        elif codelist is None:
            problems.append(f"{where}: {table} has no CDISC codelist; mark sponsor=Y")
        elif codelist not in ct:
            problems.append(f"{where}: codelist {codelist} missing from {CT_OUT}")
        elif sv not in ct[codelist]["terms"]:
            problems.append(f"{where}: {sv!r} not in CDISC CT codelist {codelist} ({table})")
        else:
            nci = ct[codelist]["terms"][sv]
            if r["nci_code"] != nci:
                problems.append(f"{where}: nci_code {r['nci_code']!r} != CT {nci} for {sv!r}")
            name_cl = TEST_NAME_CODELIST.get(codelist)
            if name_cl:
                name = ct.get(name_cl, {}).get("by_code", {}).get(nci)
                if r["decode"] != name:
                    problems.append(f"{where}: decode {r['decode']!r} != {name_cl} test name "
                                    f"{name!r}")
        for key, cl in ATTRIBUTE_CODELIST.items():
            if key in attrs and attrs[key] not in ct.get(cl, {}).get("terms", {}):
                problems.append(f"{where}: {key}={attrs[key]!r} not in codelist {cl}")
        if "unit" in attrs and attrs["unit"] not in ucum_units:
            problems.append(f"{where}: unit={attrs['unit']!r} has no UCUM row in units.csv")
        if table == "LBTEST" and not {"LBSPEC", "LBCAT"} <= attrs.keys():
            problems.append(f"{where}: LBTEST rows need LBSPEC and LBCAT attributes")

    problems += [f"duplicate (table, system, code) {k}" for k, n in keys.items() if n > 1]
    for key in sorted(values):
        if preferred[key] != 1:
            problems.append(f"{key}: {preferred[key]} preferred rows (need exactly 1)")
    return problems


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                    help="reference data folder (default: ../shared/data from the project)")
    ap.add_argument("--out", type=Path, default=ROOT / "fhircdisc" / "schemas",
                    help="folder for the generated CSVs (default: fhircdisc/schemas)")
    ap.add_argument("--terminology", type=Path,
                    default=ROOT / "fhircdisc" / "mappings" / "terminology",
                    help="terminology tables to check (default: fhircdisc/mappings/terminology)")
    args = ap.parse_args(argv)

    try:
        outputs = build_schemas(args.shared)
    except BuildError as exc:
        print(f"build_tables: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in outputs.items():
        (args.out / name).write_text(text, encoding="utf-8", newline="")
        print(f"wrote {args.out / name} ({text.count(chr(10))} lines)")

    problems = check_terminology(args.terminology, parse_ct_subset(outputs[CT_OUT]))
    if problems:
        print(f"build_tables: {len(problems)} terminology problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"terminology tables in {args.terminology} are consistent with CDISC CT "
          f"{CT_RELEASE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
