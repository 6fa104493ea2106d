#!/usr/bin/env python3
"""VTK's side of `fuseprint bench mesh`, on the phantom that command wrote, so both run on the
same machine at the same load (issue 4 names VTK 9.7's figures as the bar).

    target/release/fuseprint bench mesh --repeat 5 --write-phantom /tmp/mesh_phantom
    python scripts/bench_mesh_peers.py /tmp/mesh_phantom [--repeat 3]

or, in one run that also prints ours ÷ VTK's for each figure (this script, without its 20 s
edge-collapse pipeline, run after fuseprint's figures):

    target/release/fuseprint bench mesh --repeat 3 --peers [--python PATH_TO_PYTHON_WITH_VTK]

Needs `pip install vtk`. Each figure is the best of `--repeat` runs (wall clock), as
`fuseprint bench mesh` reports its best. VTK gets its quickest comparable setting: no normals,
gradients or scalars from flying edges (fuseprint's marching cubes makes none either).

The full pipeline is VTK's natural one: surface nets over all labels (one shared mesh, each
wall between two labels once), windowed-sinc smoothing (15 iterations, pass band 0.1, as
fuseprint's Taubin λ/μ), decimation to the face budget, binary STL. It runs with both of VTK's
quadric decimators: edge collapse (`vtkQuadricDecimation`, fuseprint's algorithm) and
clustering (`vtkQuadricClustering`: fast, but vertices snap to a grid and the output is not
kept manifold); the output's boundary and non-manifold edges are counted, untimed. fuseprint's
pipeline does more: one closed part per label (a wall between two labels belongs to both,
2.58 M faces before decimation against VTK's ~1.96 M), each decimated, oriented and checked.
"""
import argparse
import os
import sys
import tempfile
import time


def best_of(n, f):
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="folder with ct.nii and labels.nii from --write-phantom")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--faces", type=int, default=500_000)
    ap.add_argument(
        "--collapse-repeat", type=int, default=1,
        help="runs of the edge-collapse pipeline (about 20 s each at full size; 0 skips it)",
    )
    args = ap.parse_args()

    import vtk

    def read(name):
        r = vtk.vtkNIFTIImageReader()
        r.SetFileName(os.path.join(args.dir, name))
        r.Update()
        img = vtk.vtkImageData()
        img.DeepCopy(r.GetOutput())
        return img

    ct, labels = read("ct.nii"), read("labels.nii")
    dims = ct.GetDimensions()
    smp = vtk.vtkSMPTools()
    print(
        f"VTK {vtk.vtkVersion.GetVTKVersion()}, SMP backend {smp.GetBackend()} "
        f"({smp.GetEstimatedNumberOfThreads()} threads), {dims[0]}×{dims[1]}×{dims[2]} phantom, "
        f"best of {args.repeat}"
    )

    def flying_edges():
        fe = vtk.vtkFlyingEdges3D()
        fe.SetInputData(ct)
        fe.SetValue(0, 200.0)
        fe.ComputeNormalsOff()
        fe.ComputeGradientsOff()
        fe.ComputeScalarsOff()
        fe.Update()
        return fe.GetOutput().GetNumberOfPolys()

    dt, n = best_of(args.repeat, flying_edges)
    voxels = dims[0] * dims[1] * dims[2]
    print(f"VTK flying edges @200 HU: {dt:.3f} s ({voxels / dt / 1e6:.0f} M voxels/s), {n} faces")

    def nets(triangles):
        sn = vtk.vtkSurfaceNets3D()
        sn.SetInputData(labels)
        sn.GenerateLabels(9, 1, 9)
        sn.SmoothingOff()
        if triangles:
            sn.SetOutputMeshTypeToTriangles()
        else:
            sn.SetOutputMeshTypeToQuads()
        sn.Update()
        return sn

    dt, sn = best_of(args.repeat, lambda: nets(False))
    out = sn.GetOutput()
    print(
        f"VTK surface nets, 9 labels: {dt:.3f} s, {out.GetNumberOfPoints()} vertices, "
        f"{out.GetNumberOfPolys()} quads"
    )

    def smooth(mesh):
        ws = vtk.vtkWindowedSincPolyDataFilter()
        ws.SetInputData(mesh)
        ws.SetNumberOfIterations(15)
        ws.SetPassBand(0.1)
        ws.NormalizeCoordinatesOn()
        ws.BoundarySmoothingOff()
        ws.FeatureEdgeSmoothingOff()
        ws.NonManifoldSmoothingOn()
        ws.Update()
        return ws.GetOutput()

    def edge_collapse(mesh):
        qd = vtk.vtkQuadricDecimation()
        qd.SetInputData(mesh)
        qd.SetTargetReduction(max(0.0, 1.0 - args.faces / mesh.GetNumberOfPolys()))
        qd.VolumePreservationOff()
        qd.Update()
        return qd.GetOutput()

    def clustering(mesh, divisions):
        qc = vtk.vtkQuadricClustering()
        qc.SetInputData(mesh)
        qc.SetNumberOfDivisions([divisions] * 3)
        qc.AutoAdjustNumberOfDivisionsOff()
        qc.Update()
        return qc.GetOutput()

    def pipeline(name, decimate):
        """One run: the finished mesh, the face count before decimation, and each stage's time."""
        stages = {}
        t = time.perf_counter()
        mesh = nets(True).GetOutput()
        stages["surface nets (triangles)"] = time.perf_counter() - t
        faces_before = mesh.GetNumberOfPolys()
        for stage, step in (("windowed sinc", smooth), (name, decimate)):
            t = time.perf_counter()
            mesh = step(mesh)
            stages[stage] = time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            w = vtk.vtkSTLWriter()
            w.SetInputData(mesh)
            w.SetFileTypeToBinary()
            w.SetFileName(os.path.join(d, "vtk.stl"))
            w.Write()
        stages["STL write"] = time.perf_counter() - t
        return mesh, faces_before, stages

    def edge_check(mesh):
        """Boundary and non-manifold edges of the output (not timed)."""
        counts = []
        for boundary in (True, False):
            fe = vtk.vtkFeatureEdges()
            fe.SetInputData(mesh)
            fe.FeatureEdgesOff()
            fe.ManifoldEdgesOff()
            fe.SetBoundaryEdges(boundary)
            fe.SetNonManifoldEdges(not boundary)
            fe.Update()
            counts.append(fe.GetOutput().GetNumberOfLines())
        return f"{counts[0]} boundary edges, {counts[1]} non-manifold edges"

    decimators = [("quadric decimation", edge_collapse, args.collapse_repeat)]
    smoothed = smooth(nets(True).GetOutput())
    if smoothed.GetNumberOfPolys() > args.faces:
        # Clustering takes a grid, not a face count: the grid that gives about the budget on
        # this mesh is found before the timed runs (faces grow as the square of it). VTK
        # allocates a quadric (80 bytes) for every bin: 400³ is 5 GB.
        divisions = 256
        for _ in range(3):
            got = clustering(smoothed, divisions).GetNumberOfPolys()
            divisions = min(400, max(8, round(divisions * (args.faces / max(got, 1)) ** 0.5)))
        print(f"quadric clustering grid: {divisions}³")
        decimators.append(
            ("quadric clustering", lambda m: clustering(m, divisions), args.repeat)
        )
    del smoothed

    for name, decimate, repeat in decimators:
        if repeat == 0:
            continue
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            result = pipeline(name, decimate)
            runs.append((time.perf_counter() - t, result))
        dt, (mesh, before, stages) = min(runs, key=lambda r: r[0])
        for stage, secs in stages.items():
            print(f"    {stage:<28}{secs:.3f} s")
        print(
            f"VTK 9 labels: surface nets + windowed sinc + {name} {before} → "
            f"{mesh.GetNumberOfPolys()} + STL write: {dt:.3f} s "
            f"(runs: {', '.join(f'{r[0]:.3f}' for r in runs)}); {edge_check(mesh)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
