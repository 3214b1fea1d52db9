"""Model registry: loader code paths with tiny local models (no network), errors, dtype isolation, checksums."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111

from uipbench import models as M
from uipbench import weights as W


@pytest.fixture(scope="module")
def tiny_mace(tmp_path_factory):
    """A one-element, one-interaction MACE built with mace's own classes and saved with torch.save."""
    o3 = W._import("e3nn.o3")  # e3nn's packaged constants.pt is read at import: see weights._import
    modules = W._import("mace.modules")

    torch.manual_seed(0)
    with M.default_dtype(torch.float32):
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=4.0,
            num_bessel=4,
            num_polynomial_cutoff=3,
            max_ell=1,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=1,
            num_elements=1,
            hidden_irreps=o3.Irreps("4x0e"),
            MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=np.array([-3.0]),
            avg_num_neighbors=8.0,
            atomic_numbers=[29],
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
    path = tmp_path_factory.mktemp("mace") / "tiny.model"
    torch.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_m3gnet(tmp_path_factory):
    """A tiny matgl M3GNet potential saved with matgl's own ``save`` (model.json, model.pt, state.pt)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from matgl.apps.pes import Potential
    from matgl.models import M3GNet

    torch.manual_seed(0)
    model = M3GNet(
        element_types=("Cu",),
        nblocks=1,
        dim_node_embedding=8,
        dim_edge_embedding=8,
        units=8,
        threebody_cutoff=3.0,
        cutoff=4.0,
        max_n=2,
        max_l=2,
    )
    d = tmp_path_factory.mktemp("m3gnet")
    Potential(model=model).save(d)
    return d


def test_registry_has_the_benchmark_models():
    for name in [
        "chgnet-0.3.0",
        "chgnet-0.2.0",
        "chgnet-r2scan",
        "sevennet-0",
        "mace-mp-0-small",
        "mace-mp-0-medium",
        "mace-mp-0-large",
        "m3gnet",
        "tensornet",
    ]:
        assert M.get_spec(name).name == name
    with pytest.raises(KeyError, match="unknown model"):
        M.get_spec("no-such-model")


def test_mace_missing_weights_error_says_file_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("UIPBENCH_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(M.ModelNotAvailableError) as err:
        M.load_model("mace-mp-0-small", cache=False)
    msg = str(err.value)
    assert "20231210mace128L0_energy_epoch249model" in msg  # the file
    assert str(tmp_path / "mace") in msg  # where it was looked for ($XDG_CACHE_HOME/mace)
    assert "https://github.com/ACEsuit/mace-mp/releases" in msg and "model_path" in msg  # how to supply it
    assert M.mace_cached_path("small") == tmp_path / "mace" / "20231210mace128L0_energy_epoch249model"


def test_matgl_and_local_path_errors(tmp_path, monkeypatch):
    with pytest.raises(M.ModelNotAvailableError, match=r"lacks \['model.json', 'model.pt', 'state.pt'\]"):
        M.load_model("m3gnet", model_path=tmp_path, cache=False)
    with pytest.raises(M.ModelNotAvailableError, match="does not exist"):
        M.load_model("mace-mp-0-medium", model_path=tmp_path / "absent.model", cache=False)
    monkeypatch.setenv("UIPBENCH_DATA", str(tmp_path))  # an empty data directory: names the file, the repo, the fix
    monkeypatch.delenv("UIPBENCH_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(M.ModelNotAvailableError) as err:
        M.weights_files("tensornet", allow_download=False)
    msg = str(err.value)
    assert str(tmp_path / "matgl/pretrained_models/TensorNet-MatPES-PBE-v2025.1-PES/model.json") in msg
    assert "materialyze/TensorNet-MatPES-PBE-v2025.1-PES" in msg and "model_path=DIR" in msg


def test_tiny_mace_through_loader_keeps_global_dtype(tiny_mace):
    before = torch.get_default_dtype()
    m = M.load_model("mace-mp-0-small", model_path=tiny_mace, cache=False)
    assert m.dtype == torch.float64
    e = m.energy(bulk("Cu", "fcc", a=3.6))
    assert np.isfinite(e)
    assert torch.get_default_dtype() == before  # MACE's global change (mace#328) did not leak
    # translation invariance of the loaded model's energy (a real evaluation, not a stub)
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = a.copy()
    b.positions += [0.3, -0.2, 0.7]
    assert m.energy(a) == pytest.approx(m.energy(b), abs=1e-8)


def test_dtype_isolation_chgnet_unchanged_by_mace(tiny_mace):
    """CHGNet energies are bit-identical before and after a MACE model is loaded and evaluated in the process,
    and even when something else leaves torch's global default at float64 (what MACE does unguarded)."""
    MACECalculator = W._import("mace.calculators").MACECalculator

    chg = M.load_model("chgnet-0.3.0")
    slab = fcc111("Cu", (2, 2, 4), vacuum=6.0, periodic=True)
    e0 = chg.energy(slab)
    a = slab.copy()
    a.calc = chg.calc
    f0 = a.get_forces().copy()

    mace_model = M.load_model("mace-mp-0-small", model_path=tiny_mace, cache=False)
    mace_model.energy(slab)
    assert chg.energy(slab) == e0
    # the hazard being guarded against: MACE releases before the fix of mace#328 (and any package that does the
    # same) leave torch's global default at float64; mace 0.3.16 restores it itself, so simulate the leak
    with W._unsafe_torch_load():  # a whole pickled module: the test's own file
        MACECalculator(model_paths=str(tiny_mace), device="cpu", default_dtype="float64")
    try:
        torch.set_default_dtype(torch.float64)
        assert chg.energy(slab) == e0
        b = slab.copy()
        b.calc = chg.calc
        assert np.array_equal(b.get_forces(), f0)
        assert mace_model.energy(slab) == M.load_model("mace-mp-0-small", model_path=tiny_mace).energy(slab)
    finally:
        torch.set_default_dtype(torch.float32)


def test_tiny_m3gnet_through_loader_with_ev_per_a3_stress(tiny_m3gnet):
    from matgl.ext.ase import PESCalculator

    m = M.load_model("m3gnet", model_path=tiny_m3gnet, cache=False)
    a = bulk("Cu", "fcc", a=3.5)
    a.rattle(0.05, seed=1)
    e = m.energy(a)
    assert np.isfinite(e)
    a.calc = m.calc
    s_ev = a.get_stress()
    b = a.copy()
    b.calc = PESCalculator(m.calc.inner.potential, stress_unit="GPa")
    s_gpa = b.get_stress()
    # the loader's calculator reports eV/Å^3 (what ASE's cell filters expect): 1 eV/Å^3 = 160.2177 GPa
    assert np.allclose(s_gpa, s_ev * 160.21766208, rtol=1e-4, atol=1e-6)
    assert M.weights_checksum("m3gnet", tiny_m3gnet) == M.weights_checksum("m3gnet", tiny_m3gnet)


def test_chgnet_direct_path_equals_calculator_and_checksums():
    chg = M.load_model("chgnet-0.3.0")
    slab = fcc111("Cu", (2, 2, 5), vacuum=7.0, periodic=True)
    a = slab.copy()
    a.calc = chg.calc
    assert chg.energy(slab) == pytest.approx(a.get_potential_energy(), abs=2e-4 * len(slab))
    files = M.weights_files("chgnet-0.3.0")
    h = hashlib.sha256(files[0].name.encode())
    h.update(files[0].read_bytes())
    assert M.weights_checksum("chgnet-0.3.0") == h.hexdigest()
    assert M.weights_checksum("chgnet-0.2.0") != M.weights_checksum("chgnet-0.3.0")


def test_availability_table():
    tab = M.availability(["chgnet-0.3.0", "mace-mp-0-large"])
    assert list(tab["model"]) == ["chgnet-0.3.0", "mace-mp-0-large"]
    assert bool(tab.loc[0, "available"]) and len(tab.loc[0, "sha256"]) == 12
    if not tab.loc[1, "available"]:
        assert "MACE_MPtrj_20229model" in tab.loc[1, "reason"]


def test_sevennet_loader_from_the_wheel_in_a_clean_process():
    """SevenNet-0 from the sevenn wheel loads without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD preset by the caller (the
    loader trusts the packaged files) and gives fcc Cu an energy near the PBE value (about -4.1 eV/atom)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    env["OMP_NUM_THREADS"] = "1"
    code = (
        "from ase.build import bulk; from uipbench.models import load_model; "
        "print(load_model('sevennet-0').energy(bulk('Cu', 'fcc', a=3.62)))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(-4.1, abs=0.1)


# ----------------------------------------------------------------------------------------------------------------
# pinned weights and malicious pickles (issue 12)


class _Evil:
    """Unpickling this runs code: it writes ``marker`` (what a malicious weights file would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


def _evil_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Evil(marker)}, path)
    return path


def _assert_live(path: Path, marker: Path) -> None:
    """Control: the refused file really runs code when unpickled unsafely (so the refusals above mean something)."""
    assert not marker.exists()
    torch.load(path, weights_only=False)
    assert marker.read_text() == "unpickled"


def test_pins_are_the_real_files(data_dir):
    """Every pin equals the sha256 and size computed here from the installed wheels, and the data directory's
    MANIFEST for the matgl files."""
    import chgnet
    import sevenn

    site = Path(chgnet.__file__).resolve().parent.parent
    assert Path(sevenn.__file__).resolve().parent.parent == site
    with open(data_dir / "MANIFEST.tsv") as f:
        manifest = {row["path"]: (int(row["bytes"]), row["sha256"]) for row in csv.DictReader(f, delimiter="\t")}
    assert set(M.PINNED) == set(M.REGISTRY)
    for name, pins in M.PINNED.items():
        for pin in pins:
            family = M.get_spec(name).family
            if family in ("chgnet", "sevennet"):
                p = site / pin.path
                assert hashlib.sha256(p.read_bytes()).hexdigest() == pin.sha256 and p.stat().st_size == pin.bytes
            elif family == "matgl":
                assert manifest[pin.path] == (pin.bytes, pin.sha256)
            else:
                assert pin.path == M.mace_url(M.get_spec(name).variant)  # the URL mace downloads
                assert len(pin.sha256) == 64 and pin.bytes > 10_000_000


def test_malicious_pickle_in_mace_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    marker = tmp_path / "marker"
    cached = _evil_file(M.mace_cached_path("small"), marker)
    assert cached.parent == tmp_path / "mace"
    before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    with pytest.raises(M.WeightsChecksumError) as err:
        M.load_model("mace-mp-0-small", cache=False)
    msg = str(err.value)
    pin = M.PINNED["mace-mp-0-small"][0]
    assert str(cached) in msg and hashlib.sha256(cached.read_bytes()).hexdigest() in msg and pin.sha256 in msg
    assert "model_path" in msg and "download" in msg  # what to do
    tab = M.availability(["mace-mp-0-small"])
    assert not bool(tab.loc[0, "available"]) and tab.loc[0, "reason"].startswith("checksum mismatch")
    assert not marker.exists()
    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == before
    _assert_live(cached, marker)


@pytest.mark.parametrize("name", ["chgnet-0.3.0", "sevennet-0"])
def test_malicious_pickle_as_model_path_is_refused(tmp_path, name):
    """A user's own file is accepted only explicitly, and even then read with the weights-only unpickler."""
    marker = tmp_path / "marker"
    evil = _evil_file(tmp_path / "own.pth", marker)
    with pytest.raises(M.UnsafeWeightsError, match="weights-only unpickler"):
        M.load_model(name, model_path=evil, cache=False)
    assert not marker.exists()
    _assert_live(evil, marker)


def test_malicious_pickle_in_matgl_data_directory_is_refused(tmp_path, monkeypatch, data_dir):
    variant = M.get_spec("tensornet").variant
    copy = tmp_path / "data" / "matgl" / "pretrained_models" / variant
    shutil.copytree(data_dir / "matgl" / "pretrained_models" / variant, copy)
    for f in copy.iterdir():
        f.chmod(0o644)
    marker = tmp_path / "marker"
    _evil_file(copy / "state.pt", marker)
    monkeypatch.setenv("UIPBENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(M.WeightsChecksumError, match=r"checksum mismatch for .*state\.pt"):
        M.load_model("tensornet", cache=False)
    assert not bool(M.availability(["tensornet"]).loc[0, "available"])
    # the same directory passed explicitly as the user's own: matgl reads it weights-only, so it is refused too
    with pytest.raises(M.UnsafeWeightsError):
        M.load_model("tensornet", model_path=copy, cache=False)
    assert not marker.exists()
    _assert_live(copy / "state.pt", marker)


def test_pinned_matgl_weights_load_from_the_data_directory(data_dir):
    m = M.load_model("tensornet", cache=False)
    # resolved: the data directory may be reached through a link (CI's ../shared)
    assert m.meta["origin"] == "pinned" and m.weights[0].resolve().is_relative_to(data_dir.resolve())
    assert set(m.meta["files"].values()) == {p.sha256 for p in M.PINNED["tensornet"]}
    assert np.isfinite(m.energy(bulk("Cu", "fcc", a=3.6)))


def test_user_weights_hash_in_provenance_and_no_unsafe_flag_leaks(tiny_mace, tmp_path):
    from uipbench import figures

    before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    m = M.load_model("mace-mp-0-small", model_path=tiny_mace, cache=False)
    sha = hashlib.sha256(Path(tiny_mace).read_bytes()).hexdigest()
    assert m.meta == {"origin": "user", "files": {Path(tiny_mace).name: sha}}
    assert figures.provenance()["model_weights"]["mace-mp-0-small"]["files"] == {Path(tiny_mace).name: sha}
    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == before  # the unsafe mode ended with the load
    if before is None:  # and torch.load is safe again: a plain load of a malicious file is refused
        marker = tmp_path / "marker"
        evil = _evil_file(tmp_path / "evil.pt", marker)
        with pytest.raises(Exception, match="Weights only load failed"):
            torch.load(evil)
        assert not marker.exists()


def test_download_is_verified_before_it_lands(tmp_path):
    """A downloaded weights file is checked against its pin before it is moved into the cache (file:// URL: no
    network needed); a mismatch leaves nothing behind."""
    good = tmp_path / "upstream.model"
    good.write_bytes(b"weights " * 1000)
    pin = M.PinnedFile(good.as_uri(), hashlib.sha256(good.read_bytes()).hexdigest(), good.stat().st_size, "test")
    dest = tmp_path / "cache" / "file"
    assert W._download_verified(good.as_uri(), dest, pin, "x").read_bytes() == good.read_bytes()
    marker = tmp_path / "marker"
    evil = _evil_file(tmp_path / "evil.model", marker)
    dest2 = tmp_path / "cache" / "file2"
    with pytest.raises(M.WeightsChecksumError, match="does not match its pin"):
        W._download_verified(evil.as_uri(), dest2, pin, "x")
    assert not dest2.exists() and sorted(p.name for p in dest.parent.iterdir()) == ["file"]  # no partial left
    assert not marker.exists()
