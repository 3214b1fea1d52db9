"""The dataset registry: download, checksum, clear errors, parsers; the datasets chapter's numbers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from uipbench import datasets, figures, paths

ROOT = paths.ROOT


def _one_file_dataset(tmp_path: Path, content: bytes) -> datasets.RemoteFile:
    src = tmp_path / "upstream" / "table.csv"
    src.parent.mkdir(parents=True)
    src.write_bytes(content)
    return datasets.RemoteFile(path="demo/table.csv", url=src.as_uri(), sha256=hashlib.sha256(content).hexdigest())


def test_fetch_downloads_verifies_and_reuses(tmp_path):
    rf = _one_file_dataset(tmp_path, b"a,b\n1,2\n")
    data = tmp_path / "data"
    local = datasets.fetch_file(rf, data_dir=data)  # real download code (urllib) on a file:// URL
    assert local == data / "demo" / "table.csv" and local.read_bytes() == b"a,b\n1,2\n"
    (tmp_path / "upstream" / "table.csv").unlink()  # present and verified: no second download
    assert datasets.fetch_file(rf, data_dir=data) == local


def test_checksum_mismatch_is_an_error(tmp_path):
    rf = _one_file_dataset(tmp_path, b"a,b\n1,2\n")
    data = tmp_path / "data"
    (data / "demo").mkdir(parents=True)
    (data / "demo" / "table.csv").write_bytes(b"a,b\n1,3\n")  # corrupted local copy
    with pytest.raises(datasets.ChecksumError, match=r"checksum mismatch.*table\.csv"):
        datasets.fetch_file(rf, data_dir=data)


def test_download_with_wrong_checksum_is_removed(tmp_path):
    rf = _one_file_dataset(tmp_path, b"x")
    bad = datasets.RemoteFile(path=rf.path, url=rf.url, sha256="0" * 64)
    with pytest.raises(datasets.ChecksumError):
        datasets.fetch_file(bad, data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / rf.path).exists(), "an unverified download must not stay in place"


def test_missing_file_message_names_file_url_and_variable(tmp_path):
    rf = datasets.get("rxnnet-gga-r2scan").files[0]
    with pytest.raises(datasets.DataNotFoundError) as err:
        datasets.fetch_file(rf, data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "rxnnet/main.pkl.gz" in msg and rf.url in msg and "UIPBENCH_DATA" in msg and str(tmp_path) in msg


def test_failed_download_message(tmp_path):
    rf = datasets.RemoteFile(path="x/nothing.bin", url=(tmp_path / "absent.bin").as_uri(), sha256="0" * 64)
    with pytest.raises(datasets.DataNotFoundError, match=r"download failed.*absent\.bin"):
        datasets.fetch_file(rf, data_dir=tmp_path / "data")


def test_not_downloadable_sources_say_how_to_supply_them():
    with pytest.raises(datasets.DataNotFoundError, match="figshare"):
        datasets.fetch("mp-r2scan")
    for name in ("mace-mp-0-weights", "matgl-weights"):
        assert not datasets.get(name).offline and datasets.get(name).homepage


def test_registry_entries_are_complete():
    for ds in datasets.REGISTRY.values():
        assert ds.licence and ds.citation and ds.description
        if ds.in_repository:  # the project's own data: committed under data/, versioned by git
            assert ds.files and ds.parser is not None
            for f in ds.files:
                assert (paths.PROJECT_DATA / f.path).exists(), f.path
        elif ds.offline:
            assert ds.files and ds.parser is not None
            for f in ds.files:
                assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.path
                # pinned upstream: a commit hash in the URL, never a branch name
                assert re.search(r"/[0-9a-f]{40}/", f.url), f.url


def test_shared_data_verifies(data_dir):
    for ds in datasets.REGISTRY.values():
        if ds.offline and not ds.in_repository:
            ok, why = datasets.available(ds.name, data_dir=data_dir)
            assert ok, why


def test_surfaces_parser(data_dir):
    s = datasets.load("mp-surfaces", data_dir=data_dir)
    assert len(s) == 801 and s["id"].is_unique and s.element.nunique() == 42
    # units: J/m^2 = eV/A^2 * 16.0218; the Materials Project elemental surface energies lie within (0, 4) J/m^2
    assert ((s.gamma_j_per_m2 / s.gamma_ev_per_a2 - 16.02176634).abs() < 1e-9).all()
    assert s.gamma_j_per_m2.between(0, 4).all() and s.work_function_ev.between(1, 7).all()
    row = s.set_index("id").loc["100Ag11-20"]
    assert row.element == "Ag" and row.hkl == (1, 1, -2, 0)


def test_datasets_chapter_numbers(quick_outputs, data_dir):
    quick = figures.load_metrics("00_datasets", quick_outputs("00_datasets"))
    # physical/known values of the upstream files
    assert quick["surfaces"]["n_slabs"] == 801 and quick["surfaces"]["n_elements"] == 42
    assert 0 < quick["surfaces"]["gamma_j_per_m2"]["min"] < quick["surfaces"]["gamma_j_per_m2"]["median"] < 3.5
    assert quick["rxnnet"]["n_gga_r2scan_pairs"] == 974
    assert quick["matpes"]["n_identical_structure_pairs"] == 63
    # the same data give the same numbers as the committed full run
    committed = ROOT / "figures" / "00_datasets_metrics.json"
    if committed.exists():
        full = figures.load_metrics("00_datasets", committed.parent)
        full.pop("provenance"), quick.pop("provenance")
        assert full == quick


def test_data_dir_defaults_to_shared_data_beside_the_checkout(monkeypatch):
    from uipbench import paths

    monkeypatch.delenv("UIPBENCH_DATA", raising=False)
    expected = paths.SHARED_DATA if (paths.SHARED_DATA / "MANIFEST.tsv").is_file() else None
    if expected is None:
        assert paths.data_dir().name == "data" and "shared" not in paths.data_dir().parts[-2:]
    else:
        assert paths.data_dir() == expected  # the README's default, also outside make
    monkeypatch.setenv("UIPBENCH_DATA", "/somewhere/else")
    assert paths.data_dir() == Path("/somewhere/else")
