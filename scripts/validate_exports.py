#!/usr/bin/env python3
"""Read fuseprint's exported models back with independent readers.

  /tmp/venv-mesh/bin/python scripts/validate_exports.py OUT.stl OUT.3mf OUT.obj OUT.ply
  /tmp/venv-mesh/bin/python scripts/validate_exports.py --make DIR --fuseprint BIN --labels SEG.nii.gz

Checks with trimesh (watertight, winding, volume, colours), lib3mf (3MF objects, names,
base materials, colour groups) when installed, the slicer sidecars inside the 3MF, and, when
`prusa-slicer` is on PATH, slices the 3MF to G-code. Exits non-zero when a check fails.
Not part of the Rust test suite (which must not need Python).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import trimesh

failures = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        failures.append(what)


def parts_of(loaded):
    if isinstance(loaded, trimesh.Scene):
        return list(loaded.geometry.items())
    return [("mesh", loaded)]


def validate_mesh_file(path, per_part_closed=True):
    print(f"{path}:")
    loaded = trimesh.load(path, process=True)  # process merges duplicate vertices
    parts = parts_of(loaded)
    check(len(parts) > 0, f"{len(parts)} part(s) read")
    total_faces = 0
    for name, m in parts:
        total_faces += len(m.faces)
        if per_part_closed:
            check(m.is_watertight, f"{name}: watertight ({len(m.faces)} faces)")
            check(m.is_winding_consistent, f"{name}: consistent winding")
            check(m.volume > 0, f"{name}: positive volume {m.volume:.1f} mm³ (outward normals)")
    if not per_part_closed:
        m = loaded if isinstance(loaded, trimesh.Trimesh) else loaded.dump(concatenate=True)
        # A merged STL of touching parts repeats their shared wall; every edge stays paired.
        edges = m.edges_sorted
        _, counts = np.unique(edges, axis=0, return_counts=True)
        check(bool(np.all(counts % 2 == 0)), f"merged: every edge used an even number of times ({len(m.faces)} faces)")
    return parts


def validate_colours(path, parts):
    """OBJ: each part's material has a diffuse colour; PLY: vertex colours present."""
    coloured = 0
    for name, m in parts:
        vis = m.visual
        if vis.kind == "vertex" and len(vis.vertex_colors):
            coloured += 1
        elif getattr(vis, "material", None) is not None:
            mat = vis.material
            diffuse = getattr(mat, "diffuse", None)
            if diffuse is None and hasattr(mat, "main_color"):
                diffuse = mat.main_color
            if diffuse is not None:
                coloured += 1
    check(coloured == len(parts), f"{path}: {coloured}/{len(parts)} parts carry a colour")


def threemf_parts(path):
    """The one model object's vertices and triangles, split into parts by the PrusaSlicer
    volume ranges (independent of fuseprint's own reader)."""
    import xml.etree.ElementTree as ET
    ns = {"c": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    with zipfile.ZipFile(path) as z:
        root = ET.fromstring(z.read("3D/3dmodel.model"))
        cfg = ET.fromstring(z.read("Metadata/Slic3r_PE_model.config"))
    objs = root.findall("c:resources/c:object", ns)
    mesh = objs[0].find("c:mesh", ns)
    verts = np.array([[float(v.get(k)) for k in "xyz"] for v in mesh.find("c:vertices", ns)])
    tris = np.array([[int(t.get(k)) for k in ("v1", "v2", "v3")] for t in mesh.find("c:triangles", ns)])
    items = root.findall("c:build/c:item", ns)
    volumes = []
    for vol in cfg.iter("volume"):
        meta = {m.get("key"): m.get("value") for m in vol.iter("metadata")}
        volumes.append((int(vol.get("firstid")), int(vol.get("lastid")), meta))
    return objs, items, verts, tris, volumes


def validate_3mf(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        for required in ["[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model",
                         "Metadata/Slic3r_PE_model.config", "Metadata/model_settings.config"]:
            check(required in names, f"3MF contains {required}")
        model = z.read("3D/3dmodel.model").decode()
        check('unit="millimeter"' in model, "3MF unit is millimetre")
        check("LPS" in model and "fuseprint:print_from_lps" in model, "3MF records the LPS frame and the LPS → print transform")
        prusa = z.read("Metadata/Slic3r_PE_model.config").decode()
        bambu = z.read("Metadata/model_settings.config").decode()
        check('key="fill_density"' in prusa and 'key="extruder"' in prusa, "PrusaSlicer sidecar has extruder + fill_density")
        check('key="sparse_infill_density"' in bambu, "Bambu/Orca sidecar has sparse_infill_density")
    objs, items, verts, tris, volumes = threemf_parts(path)
    check(len(objs) == 1 and len(items) == 1, f"one model object, one build item ({len(objs)}, {len(items)})")
    t = [float(x) for x in items[0].get("transform").split()]
    placed = verts + np.array(t[9:12])
    check(abs(placed[:, 2].min()) < 1e-3, f"lowest point on the bed (z = {placed[:, 2].min():.4f} mm)")
    check(volumes and volumes[-1][1] == len(tris) - 1, f"{len(volumes)} volumes cover all {len(tris)} triangles")
    bambu_ranges = set()
    import re
    for m in re.finditer(r'firstid="(\d+)" lastid="(\d+)"', bambu):
        bambu_ranges.add((int(m.group(1)), int(m.group(2))))
    check(bambu_ranges == {(a, b) for a, b, _ in volumes}, "Bambu/Orca parts use the same triangle ranges as the PrusaSlicer volumes")
    for first, last, meta in volumes:
        part = trimesh.Trimesh(verts, tris[first:last + 1], process=True)
        part.remove_unreferenced_vertices()
        check(part.is_watertight and part.is_winding_consistent and part.volume > 0,
              f"{meta.get('name')}: watertight, consistent, volume {part.volume:.1f} mm³ ({len(part.faces)} faces)")
    try:
        import lib3mf
    except ImportError:
        print("  (lib3mf not installed: skipped)")
        return volumes
    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    reader.ReadFromFile(path)
    objs = model.GetMeshObjects()
    count = 0
    while objs.MoveNext():
        o = objs.GetCurrentMeshObject()
        count += 1
        has_prop, res_id, _ = o.GetObjectLevelProperty()
        check(has_prop, f"lib3mf: object '{o.GetName()}' has a material ({o.GetTriangleCount()} triangles)")
    check(count == 1, f"lib3mf reads {count} mesh object(s)")
    bases = model.GetBaseMaterialGroups()
    b = 0
    while bases.MoveNext():
        b += bases.GetCurrentBaseMaterialGroup().GetCount()
    check(b == len(volumes), f"lib3mf: {b} base materials for {len(volumes)} tissues")
    return volumes


def slice_with_prusa(path, volumes):
    exe = shutil.which("prusa-slicer")
    if not exe:
        print("  (prusa-slicer not on PATH: slicing skipped)")
        return
    out = tempfile.mkdtemp()
    os.chmod(out, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=out)
    extruders = max(int(meta.get("extruder", 1)) for _, _, meta in volumes)
    # A printer with as many extruders as the model uses, so per-volume extruders show up as
    # tool changes.
    nozzles = ",".join(["0.4"] * extruders)
    gcode = os.path.join(out, "model.gcode")
    cmd = [exe, "--export-gcode", "--nozzle-diameter", nozzles, "-o", gcode, path]
    print("  $ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    print("  " + (r.stdout + r.stderr).strip().replace("\n", "\n  ")[-800:])
    ok = r.returncode == 0 and os.path.exists(gcode) and os.path.getsize(gcode) > 0
    check(ok, f"prusa-slicer sliced {os.path.basename(path)} to G-code")
    if ok:
        with open(gcode, errors="replace") as f:
            text = f.read()
        tools = sorted(set(line.split()[0] for line in text.splitlines() if line[:1] == "T" and line[1:2].isdigit()))
        print(f"  G-code: {os.path.getsize(gcode) / 1e6:.1f} MB, tools used: {tools}")
        check(len(tools) == extruders, f"G-code uses all {extruders} extruders the volumes ask for")
    # PrusaSlicer's own 3MF of what it loaded: the per-volume settings it took, and admesh's
    # repair statistics (all zero: nothing to fix).
    back = os.path.join(out, "back.3mf")
    r = subprocess.run([exe, "--export-3mf", "-o", back, path], capture_output=True, text=True, env=env, timeout=1800)
    check(r.returncode == 0 and os.path.exists(back), "prusa-slicer re-exports the model as its own 3MF")
    if r.returncode != 0:
        return
    import xml.etree.ElementTree as ET
    with zipfile.ZipFile(back) as z:
        cfg = ET.fromstring(z.read("Metadata/Slic3r_PE_model.config"))
    taken = []
    for vol in cfg.iter("volume"):
        meta = {m.get("key"): m.get("value") for m in vol.iter("metadata")}
        stats = vol.find("mesh")
        taken.append((meta, dict(stats.attrib) if stats is not None else {}))
    check(len(taken) == len(volumes), f"PrusaSlicer loaded {len(taken)} volumes in one object")
    for (_, _, ours), (theirs, stats) in zip(volumes, taken):
        same = all(theirs.get(k) == ours.get(k) for k in ("name", "extruder", "fill_density", "perimeters"))
        check(same, f"PrusaSlicer took {ours.get('name')}: extruder {theirs.get('extruder')}, infill {theirs.get('fill_density')}, perimeters {theirs.get('perimeters')}")
        fixed = {k: v for k, v in stats.items() if v not in ("0", None)}
        check(not fixed, f"  admesh found nothing to repair in {ours.get('name')} {fixed or ''}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--make", help="folder to export into first")
    ap.add_argument("--fuseprint", default="fuseprint")
    ap.add_argument("--labels", help="label map to mesh with --make")
    ap.add_argument("--no-slice", action="store_true")
    a = ap.parse_args()
    files = list(a.files)
    if a.make:
        os.makedirs(a.make, exist_ok=True)
        for ext in ["stl", "3mf", "obj", "ply"]:
            out = os.path.join(a.make, f"model.{ext}")
            cmd = [a.fuseprint, "mesh", a.labels, "--labels", "--smooth", "-o", out, "--overwrite"]
            print("$ " + " ".join(cmd))
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            files.append(out)
        out = os.path.join(a.make, "parts.stl")
        subprocess.run([a.fuseprint, "mesh", a.labels, "--labels", "--smooth", "--per-part", "-o", out, "--overwrite"],
                       check=True, stdout=subprocess.DEVNULL)
        files += sorted(os.path.join(a.make, f) for f in os.listdir(a.make) if f.startswith("parts_"))
    for f in files:
        ext = f.rsplit(".", 1)[-1].lower()
        # Merged files (and the 3MF's one object) repeat the shared walls of touching parts.
        merged = ext in ("stl", "ply", "3mf") and not os.path.basename(f).startswith("parts_")
        parts = validate_mesh_file(f, per_part_closed=not merged)
        if ext in ("obj", "ply"):
            validate_colours(f, parts)
        if ext == "3mf":
            volumes = validate_3mf(f)
            if not a.no_slice:
                slice_with_prusa(f, volumes)
    print(f"\n{len(failures)} check(s) failed" if failures else "\nall checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
