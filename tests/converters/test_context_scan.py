"""Pass 1 of the streaming engine reads an uncompressed NDJSON file a block at a time;
its tasks hold exactly the Observation lines, numbered, that a line-by-line read of the
same file (gzipped) gives, however the blocks fall."""

from __future__ import annotations

import gzip
import multiprocessing
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters import streaming
from fhircdisc.converters.fhir_reader import LineResource

OBSERVATION = orjson.dumps({"resourceType": "Observation", "id": "o", "status": "final"})
SPACED = b'{ "resourceType" : "Observation", "id": "spaced"}'
PATIENT = orjson.dumps({"resourceType": "Patient", "id": "p"})
DEFINITION = orjson.dumps({"resourceType": "ObservationDefinition", "id": "d"})


def scan(path: Path, chunk_lines: int) -> tuple[Any, ...]:
    items, ordinals, tasks, streamed = streaming._read_context(
        [path], chunk_lines, None, path.parent / f"work-{path.name}")
    lines = [list(streaming.task_lines(task)) for task in tasks]
    ids = [getattr(item, "data", {}).get("id", "?") for item in items]
    return lines, ids, ordinals, streamed


kinds = st.sampled_from([OBSERVATION, OBSERVATION, OBSERVATION, SPACED, PATIENT, DEFINITION,
                         b"", b"   "])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(kinds, min_size=1, max_size=40), st.integers(1, 7),
       st.sampled_from([40, 64, 200, 4096]), st.booleans(), st.booleans())
def test_blocks_cut_tasks_as_a_line_by_line_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 kinds: list[bytes], chunk_lines: int,
                                                 block: int, crlf: bool, last_end: bool
                                                 ) -> None:
    monkeypatch.setattr(streaming, "SCAN_BLOCK", block)
    monkeypatch.setattr(streaming, "CUT_MIN_BYTES", 0)
    lines = [line.replace(b'"o"', b'"o%d"' % n) for n, line in enumerate(kinds)]
    text = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if last_end else b"")
    plain = tmp_path / f"x{len(text)}.ndjson"
    plain.write_bytes(text)
    zipped = tmp_path / f"x{len(text)}.ndjson.gz"
    zipped.write_bytes(gzip.compress(text))
    found = scan(plain, chunk_lines)
    assert found == scan(zipped, chunk_lines)
    read = [(number, line.rstrip(b"\r\n"))
            for number, line in enumerate(text.split(b"\n"), 1)]
    assert [line for task in found[0] for line in task] == \
        [(number, line) for number, line in read if streaming.is_streamed_line(line)]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.integers(0, 10**6), min_size=0, max_size=60), st.integers(1, 9),
       st.sampled_from([40, 64, 200, 4096]), st.booleans(), st.booleans(),
       st.sampled_from([None, 0, -1]))
def test_a_file_cut_in_another_process_has_the_tasks_of_the_block_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids: list[int], chunk_lines: int,
        block: int, crlf: bool, last_end: bool, other: int | None) -> None:
    """A file of Observation lines only is cut into tasks in another process: the same
    tasks (byte ranges, first lines, sizes) as the block scan; a file with one other line
    (``other``: its place) is left to the block scan, at once when it is the first."""
    monkeypatch.setattr(streaming, "SCAN_BLOCK", block)
    monkeypatch.setattr(streaming, "CUT_MIN_BYTES", 0)     # small files cut apart too
    lines = [OBSERVATION.replace(b'"o"', b'"o%d"' % n) for n in ids]
    if other is not None and lines:
        lines[other] = PATIENT
    text = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if last_end and lines else b"")
    path = tmp_path / f"x{len(text)}-{other}.ndjson"
    path.write_bytes(text)
    with _cuts_taken() as cuts:                     # the cuts made in another process
        apart = streaming._read_context([path], chunk_lines, None)
    begins_usual = bool(lines) and not (other is not None and other in (0, -len(lines)))
    assert len(cuts) == begins_usual
    assert not cuts or (cuts[0] is None) == (other is not None)
    with pytest.MonkeyPatch.context() as patch:     # each file scanned, none cut
        patch.setattr(streaming, "_starts_usual", lambda path: False)
        assert apart == streaming._read_context([path], chunk_lines, None)
    assert apart[3] == len(lines) - (other is not None and bool(lines))


@contextmanager
def _cuts_taken() -> Iterator[list[Any]]:
    """The cuts pass 1 takes from the cutting processes, as it takes them."""
    cuts: list[Any] = []
    real = streaming._TaskCuts.cut

    def recorded(self: streaming._TaskCuts, rank: int) -> Any:
        if self.cuts(rank):
            cuts.append(real(self, rank))
            return cuts[-1]
        return real(self, rank)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming._TaskCuts, "cut", recorded)
        yield cuts


def test_a_file_of_observations_is_cut_without_reading_each_line(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"\n".join([PATIENT, *[OBSERVATION] * 10]) + b"\n")
    tasks, ids, _, streamed = scan(path, 4)
    assert streamed == 10 and ids == ["p"]
    assert [[number for number, _ in task] for task in tasks] == [
        [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]


def test_tasks_know_when_their_range_holds_other_lines(tmp_path: Path) -> None:
    """Only a range with other lines in it is filtered line by line in pass 2."""
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"\n".join([*[OBSERVATION] * 5, PATIENT, *[OBSERVATION] * 5]) + b"\n")
    _, _, tasks, _ = streaming._read_context([path], 4, None)
    assert [task.mixed for task in tasks] == [False, True, False]
    assert [number for number, _ in streaming.task_lines(tasks[1])] == [5, 7, 8, 9]


def test_patient_lines_are_held_as_their_text(tmp_path: Path) -> None:
    """Pass 1 holds every Patient and Encounter until the end: one from an NDJSON line as
    the line (parsed again when read), one from a Bundle as parsed."""
    patient = orjson.dumps({"resourceType": "Patient", "id": "p", "gender": "female",
                            "birthDate": "1970-03"})
    bundle = orjson.dumps({"resourceType": "Bundle", "type": "collection",
                           "entry": [{"resource": {"resourceType": "Patient", "id": "q"}}]})
    path = tmp_path / "export.ndjson"
    visit = orjson.dumps({"resourceType": "Encounter", "id": "e", "status": "finished"})
    path.write_bytes(b"\n".join([patient, bundle, OBSERVATION, visit, DEFINITION]) + b"\n")
    items, _, _, streamed = streaming._read_context([path], 4, None)
    kept, entry, encounter, definition = items
    assert isinstance(encounter, LineResource) and encounter.data["id"] == "e"
    assert not isinstance(definition, LineResource)
    assert streamed == 1
    assert isinstance(kept, LineResource) and not isinstance(entry, LineResource)
    assert "data" not in vars(kept) and kept.line == patient
    assert kept.data == orjson.loads(patient) and kept.data is not kept.data
    assert (kept.type, kept.id, kept.key) == ("Patient", "p", "Patient/p")
    assert kept.report_key == f"Patient/p@{path} [line 1]"
    shipped = pickle.loads(pickle.dumps(kept))             # Spark ships the context
    assert shipped.data == kept.data and shipped.report_key == kept.report_key


@pytest.mark.parametrize("name", ["Patient-example.json", "Patient-f201.json",
                                  "Encounter-example.json", "ResearchSubject-example.json",
                                  "ResearchStudy-example.json"])
def test_a_resource_held_as_its_line_keys_and_votes_as_the_parsed_one(name: str) -> None:
    """What pass 1 works out for a line it holds as text (type, id, keys, the FHIR version
    its elements tell) is what the resource parsed from the same line gives."""
    from fhircdisc.converters.fhir_reader import Origin, SourceResource
    from fhircdisc.converters.fhir_version import telling_element
    from tests.conftest import shared

    path = shared("fhir-r4-examples", name)
    data = orjson.loads(path.read_bytes())
    for resource in (data, {key: value for key, value in data.items() if key != "id"}):
        line = orjson.dumps(resource)
        origin = Origin("export.ndjson", "line 7")
        held = LineResource.read(orjson.loads(line), line, origin)
        parsed = SourceResource(orjson.loads(line), origin)
        assert (held.type, held.id, held.key, held.report_key) == \
            (parsed.type, parsed.id, parsed.key, parsed.report_key)
        assert held.telling == telling_element(resource) and held.data == resource


def test_a_held_resource_still_tells_its_version(tmp_path: Path) -> None:
    """An R5 element on a line held as text (a ResearchSubject of an R5 export, here made a
    held type) still votes: mixing it with R4 input is refused, naming its line."""
    from fhircdisc.converters.fhir_to_sdtm import read_context
    from fhircdisc.errors import InputError
    from fhircdisc.mappings import terminology

    r5 = orjson.dumps({"resourceType": "ResearchSubject", "id": "r", "status": "active",
                       "subject": {"reference": "Patient/p"}, "study": {"reference": "x"}})
    r4 = orjson.dumps({"resourceType": "ResearchStudy", "id": "s", "status": "active",
                       "enrollment": [{"reference": "Group/g"}]})
    path = tmp_path / "export.ndjson"
    path.write_bytes(r5 + b"\n" + r4 + b"\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming, "_HELD_AS_TEXT", frozenset({"ResearchSubject"}))
        items, _, _, _ = streaming._read_context([path], 4, None)
    assert isinstance(items[0], LineResource)
    with pytest.raises(InputError, match=r"R5 element ResearchSubject.subject in .*line 1"):
        read_context(items, sources=[str(path)], terminology=terminology.load(()))


def _patient(number: int) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": f"p{number}", "gender": "female",
                         "birthDate": f"19{50 + number}-03-01"})


def _observations(patient: int, count: int) -> list[bytes]:
    return [orjson.dumps({"resourceType": "Observation", "id": f"o{patient}-{n}",
                          "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org",
                                               "code": "8867-4"}]},
                          "subject": {"reference": f"Patient/p{patient}"},
                          "effectiveDateTime": "2021-03-04T10:00:00Z",
                          "valueQuantity": {"value": 60 + n, "unit": "/min",
                                            "system": "http://unitsofmeasure.org",
                                            "code": "/min"}})
            for n in range(count)]


@pytest.mark.parametrize("cut_fails", [False, True])
def test_files_cut_apart_keep_the_file_order(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  cut_fails: bool) -> None:
    """The files of Observations are cut while the others are read: the resources,
    ordinals and tasks come in file order all the same, as a read of one file after the
    other gives them; a file that began with Observations but held a Patient further on
    (``cut_fails``) is read in its place, its Patient between the files around it."""
    monkeypatch.setattr(streaming, "CUT_MIN_BYTES", 0)
    first = tmp_path / "a.ndjson"
    first.write_bytes(b"\n".join([_patient(1), *_observations(1, 3)]) + b"\n")
    cut = tmp_path / "b.ndjson"
    cut.write_bytes(b"\n".join([*_observations(2, 5), *([_patient(2)] if cut_fails else []),
                                *_observations(3, 4)]) + b"\n")
    last = tmp_path / "c.ndjson"
    last.write_bytes(b"\n".join([_patient(3), *_observations(3, 2), _patient(4)]) + b"\n")
    files = [first, cut, last]

    def read() -> tuple[Any, ...]:
        items, ordinals, tasks, streamed = streaming._read_context(files, 3, None)
        return ([item.data["id"] for item in items], ordinals,
                [(task.number, task.rank, task.first_line, task.size, task.mixed,
                  [number for number, _ in streaming.task_lines(task)]) for task in tasks],
                streamed)

    with _cuts_taken() as cuts:
        both = read()
    assert len(cuts) == 1 and (cuts[0] is None) == cut_fails     # only b is cut
    with pytest.MonkeyPatch.context() as patch:                  # one file after the other
        patch.setattr(streaming, "_starts_usual", lambda path: False)
        assert both == read()
    ids, _, tasks, streamed = both
    assert ids == ["p1", *(["p2"] if cut_fails else []), "p3", "p4"]
    assert [task[0] for task in tasks] == list(range(len(tasks)))
    assert [task[1] for task in tasks] == sorted(task[1] for task in tasks)
    assert streamed == 3 + 9 + 2


@pytest.mark.parametrize("cut_fails", [False, True])
def test_the_context_is_mapped_from_every_file_in_order(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        cut_fails: bool) -> None:
    """Pass 1 maps the context while the files of Observations are cut; when one of them
    turns out to hold a Patient too, the context is mapped again with it: DM, the report
    and the tasks are those of a read of one file after the other."""
    monkeypatch.setattr(streaming, "CUT_MIN_BYTES", 0)
    cut = tmp_path / "a.ndjson"
    cut.write_bytes(b"\n".join([*_observations(1, 4), *([_patient(1)] if cut_fails else []),
                                *_observations(2, 3)]) + b"\n")
    patients = tmp_path / "b.ndjson"
    patients.write_bytes(b"\n".join([_patient(2), _patient(3)]) + b"\n")

    def setup(name: str) -> tuple[Any, ...]:
        with streaming.fewer_collections():
            made = streaming.prepare([cut, patients], tmp_path / name, study_id="S",
                                     chunk_lines=3)
        dm = made.small.domains["DM"]
        return (dm.astype(object).where(dm.notna(), None).to_dict("records"),
                made.report.counts(),
                [(task.rank, task.first_line, task.size) for task in made.tasks],
                sorted(made.context.enrolment.subjects))

    mapped: list[int] = []
    real = streaming._map_context
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming, "_map_context",
                      lambda *args, **options: mapped.append(1) or real(*args, **options))
        both = setup("both")
    assert len(mapped) == 1 + cut_fails
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming, "_starts_usual", lambda path: False)
        assert both == setup("in-order")
    assert [row["USUBJID"] for row in both[0]] == \
        [f"S-p{n}" for n in ((1, 2, 3) if cut_fails else (2, 3))]


def test_a_file_changed_between_the_passes_is_refused(tmp_path: Path) -> None:
    """The tasks of pass 1 are read in pass 2: a file whose lines no longer end where a
    task's range does (it changed in between) is refused, naming the file and the line,
    rather than its lines taken from the wrong places."""
    from fhircdisc.errors import InputError

    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"\n".join([OBSERVATION] * 10) + b"\n")
    _, _, tasks, _ = streaming._read_context([path], 4, None)
    assert [len(list(streaming.task_lines(task))) for task in tasks] == [4, 4, 2]
    path.write_bytes(b"\n".join([OBSERVATION + b" "] * 10) + b"\n")   # longer lines
    with pytest.raises(InputError, match=r"changed while it was being converted") as error:
        list(streaming.task_lines(tasks[1]))
    assert error.value.source == str(path) and error.value.location == "line 8"


def test_without_fork_every_file_is_scanned_here(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the system cannot fork, no file is cut in another process: the block scan
    reads them all, with the same resources, ordinals and tasks."""
    monkeypatch.setattr(streaming, "CUT_MIN_BYTES", 0)
    cut = tmp_path / "a.ndjson"
    cut.write_bytes(b"\n".join([*_observations(1, 5), _patient(1), *_observations(2, 4)])
                    + b"\n")
    with _cuts_taken() as cuts:
        forked = streaming._read_context([cut], 3, None)
    assert len(cuts) == 1
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with _cuts_taken() as cuts:
        assert streaming._read_context([cut], 3, None) == forked
    assert cuts == []
