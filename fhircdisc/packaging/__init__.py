"""Submission packages: the eCTD module 5 tree of XPT files, define.xml and the validation
report, with a checksum manifest to verify the handover later.

    from fhircdisc.packaging import build_package, verify_package
    result = build_package("sdtm/", "submission/", dataset_json=True)
    check = verify_package("submission/")       # check.ok, .missing, .changed, .extra
"""

from fhircdisc.packaging.manifest import (
    CHECKSUMS_NAME,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    VerifyResult,
    read_manifest,
    verify_package,
    write_manifest,
)
from fhircdisc.packaging.package import (
    PackageRefused,
    PackageResult,
    build_package,
    ectd_folder_name,
    sdtm_subpath,
)

__all__ = [
    "CHECKSUMS_NAME",
    "MANIFEST_NAME",
    "FileEntry",
    "Manifest",
    "PackageRefused",
    "PackageResult",
    "VerifyResult",
    "build_package",
    "ectd_folder_name",
    "read_manifest",
    "sdtm_subpath",
    "verify_package",
    "write_manifest",
]
