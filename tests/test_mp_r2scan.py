"""MP-r2SCAN loader (uipbench.transfer.mp_r2scan) against a local figshare-like HTTP server on 127.0.0.1.

The fixture is a small record in the MPtrj layout the loader parses ({mp_id: {frame_id: {structure, energies,
force, stress [kBar, VASP sign], magmom}}}, gzipped JSON) with labels computed by ASE's EMT on strained Cu and
Al cells, plus a README that is fetched and verified but not parsed. No external network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from uipbench.datasets import ChecksumError
from uipbench.parsers import DataFormatError
from uipbench.transfer import mp_r2scan
from uipbench.transfer.training_data import frames_to_training_set, group_split

DATA_NAME = "MP-r2SCAN.json.gz"


def _emt_frames():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    out = []
    for mp_id, el, a0 in (("mp-30", "Cu", 3.61), ("mp-134", "Al", 4.05), ("mp-23", "Ni", 3.52)):
        for k, (scale, shear) in enumerate(((0.97, 0.01), (1.02, -0.02))):
            a = bulk(el, "fcc", a=a0 * scale, cubic=True)
            a.set_cell(a.cell[:] @ np.array([[1, shear, 0], [0, 1, 0], [0, 0, 1]]), scale_atoms=True)
            a.rattle(0.03, seed=k + 1)
            a.calc = EMT()
            out.append((mp_id, f"{mp_id.split('-')[1]}000-{k % 2}-{k}", a))
    return out


def _record_bytes():
    from ase.units import bar
    from pymatgen.io.ase import AseAtomsAdaptor

    doc, truth = {}, {}
    for mp_id, fid, a in _emt_frames():
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=False)
        kbar = -s / (1000 * bar)  # VASP: kBar, positive under compression
        doc.setdefault(mp_id, {})[fid] = {
            "structure": AseAtomsAdaptor.get_structure(a).as_dict(),
            "uncorrected_total_energy": e,
            "corrected_total_energy": e,
            "energy_per_atom": e / len(a),
            "ef_per_atom": None,
            "force": f.tolist(),
            "stress": kbar.tolist(),
            "magmom": [0.0] * len(a) if mp_id == "mp-23" else None,
            "bandgap": 0.0,
        }
        truth[fid] = (mp_id, a.copy(), e, f, s)
    return gzip.compress(json.dumps(doc).encode(), mtime=0), truth


class FigshareStub:
    """A figshare API v2 article record and its files on 127.0.0.1 (Range requests served as 206)."""

    def __init__(self, files: dict[str, bytes], md5_override: dict[str, str] | None = None):
        self.files = files
        self.md5_override = md5_override or {}
        self.hits: dict[str, int] = {}
        self.ranges: list[str] = []
        self.bytes_sent = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.hits[self.path] = stub.hits.get(self.path, 0) + 1
                if self.path == f"/v2/articles/{mp_r2scan.ARTICLE_ID}/versions/{mp_r2scan.VERSION}":
                    body, code, extra = json.dumps(stub.record()).encode(), 200, {}
                elif self.path.startswith("/ndownloader/files/"):
                    name = list(stub.files)[int(self.path.rsplit("/", 1)[1]) - 1]
                    body, code, extra = stub.files[name], 200, {}
                    rng = self.headers.get("Range")
                    if rng:
                        stub.ranges.append(rng)
                        start = int(rng.split("=")[1].split("-")[0])
                        extra = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                        body, code = body[start:], 206
                    stub.bytes_sent += len(body)
                else:
                    body, code, extra = b"not found", 404, {}
                self.send_response(code)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self) -> dict:
        files = []
        for i, (name, data) in enumerate(self.files.items(), start=1):
            md5 = self.md5_override.get(name, hashlib.md5(data).hexdigest())
            files.append({"id": i, "name": name, "size": len(data), "is_link_only": False, "mimetype": "",
                          "download_url": f"{self.base}/ndownloader/files/{i}", "supplied_md5": md5,
                          "computed_md5": md5})  # fmt: skip
        return {"id": mp_r2scan.ARTICLE_ID, "version": mp_r2scan.VERSION, "doi": mp_r2scan.DOI, "files": files}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def record():
    return _record_bytes()


def test_loader_downloads_verifies_caches_and_parses(record, tmp_path):
    data, truth = record
    files = {DATA_NAME: data, "README.txt": b"MP-r2SCAN test record\n"}
    with FigshareStub(files) as stub:
        frames = mp_r2scan.load_mp_r2scan(tmp_path, api=f"{stub.base}/v2", progress=False)
        hits_first = dict(stub.hits)
        again = mp_r2scan.load_mp_r2scan(tmp_path, api=f"{stub.base}/v2", progress=False)
        assert stub.hits == hits_first, "a second call must neither read the record nor download"
    assert sum(hits_first.values()) == 3  # record + two files
    assert len(frames) == len(truth) == len(again)
    for a in frames:
        mp_id, ref, e, f, s = truth[a.info["id"]]
        assert a.info["group"] == mp_id
        assert a.info["energy_r2scan_ev"] == pytest.approx(e, rel=1e-12)
        np.testing.assert_allclose(a.get_positions(), ref.get_positions(), atol=1e-9)
        np.testing.assert_allclose(a.arrays["forces_r2scan_ev_per_a"], f, atol=1e-12)
        from ase.stress import voigt_6_to_full_3x3_stress

        np.testing.assert_allclose(voigt_6_to_full_3x3_stress(a.info["stress_r2scan_ev_per_a3"]), s, atol=1e-12)
        assert ("magmoms_r2scan_bohr" in a.arrays) == (mp_id == "mp-23")
    ts = frames_to_training_set(frames, "r2scan", source="mp-r2scan")
    for k, a in enumerate(frames):
        assert ts.energies[k] == pytest.approx(truth[a.info["id"]][2] / len(a), rel=1e-12)
    split = group_split(ts.ids, ts.groups, seed=0)
    assert [len({ts.groups[ts.ids.index(i)] for i in split[k]}) for k in ("train", "val", "test")] == [1, 1, 1]
    assert (tmp_path / "mp-r2scan" / "v2" / "README.txt").read_bytes() == files["README.txt"]


def test_checksum_mismatch_is_refused(record, tmp_path):
    data, _ = record
    with (
        FigshareStub({DATA_NAME: data}, md5_override={DATA_NAME: "0" * 32}) as stub,
        pytest.raises(ChecksumError, match=r"does not match figshare record .*md5 0{32}"),
    ):
        mp_r2scan.fetch_mp_r2scan(tmp_path, api=f"{stub.base}/v2", progress=False)
    d = tmp_path / "mp-r2scan" / "v2"
    assert not (d / DATA_NAME).exists() and not (d / f"{DATA_NAME}.part").exists()


def test_partial_download_resumes_with_range_and_env_base(record, tmp_path, monkeypatch):
    data, _ = record
    d = tmp_path / "mp-r2scan" / "v2"
    d.mkdir(parents=True)
    half = len(data) // 2
    (d / f"{DATA_NAME}.part").write_bytes(data[:half])
    with FigshareStub({DATA_NAME: data}) as stub:
        monkeypatch.setenv(mp_r2scan.ENV_API, f"{stub.base}/v2")
        (path,) = mp_r2scan.fetch_mp_r2scan(tmp_path, progress=False)
    assert stub.ranges == [f"bytes={half}-"] and stub.bytes_sent == len(data) - half
    assert path.read_bytes() == data and not (d / f"{DATA_NAME}.part").exists()


def test_parser_refuses_other_layouts(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"mp-1": {"f-0": {"structure": {}, "energy": -1.0}}}))
    with pytest.raises(DataFormatError, match="MPtrj layout"):
        mp_r2scan.parse_mp_r2scan([p])
    p.write_text(json.dumps([1, 2]))
    with pytest.raises(DataFormatError, match="expected"):
        mp_r2scan.parse_mp_r2scan([p])
