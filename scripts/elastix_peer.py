#!/usr/bin/env python3
"""Peer figure: elastix on fuseprint's own benchmark phantom, TRE against the known truth.

    cargo run -- bench register --write-phantom /tmp/phantom      # once
    python3 scripts/elastix_peer.py /tmp/phantom [--variant NAME ...] [--threads 2] [--rigid] [--issue-pair] [--no-warped]

Runs elastix rigid -> affine -> B-spline (scripts/elastix/*.txt; each variant below overrides a
few B-spline parameters), then `transformix -def target_points.txt` on the final transform, and
compares its output points with `true_moving_points.txt`. elastix's TransformParameters map
fixed physical points to moving ones, the same direction as fuseprint's `moving_from_fixed`, so
transformix's OutputPoint is directly comparable with the truth's moving-world position. ITK's
physical frame is LPS, like fuseprint's world: the point files need no flip.

Each stage is timed with /usr/bin/time -v (wall, CPU = user + sys, peak RSS) and the load
average is printed next to it, since the machine is shared. Needs only numpy-free Python 3.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "elastix"

# B-spline stage variants: parameter -> value(s) overriding scripts/elastix/bspline.txt.
VARIANTS = {
    # The committed file as it is: grid 32 mm, 500 iterations per level, 4096 samples.
    "default": {},
    # Four times the iterations (elastix's answer when the default under-converges).
    "long": {"MaximumNumberOfIterations": "2000"},
    "grid24": {"FinalGridSpacingInPhysicalUnits": "24"},
    "grid16": {"FinalGridSpacingInPhysicalUnits": "16"},
    # Grid 16 mm with more iterations (finer grids have more parameters to converge).
    "grid16-long": {
        "FinalGridSpacingInPhysicalUnits": "16",
        "MaximumNumberOfIterations": "2000",
    },
    # MI plus bending energy: the regularised form elastix recommends against folding.
    "bending": {
        "Registration": '"MultiMetricMultiResolutionRegistration"',
        "Metric": '"AdvancedMattesMutualInformation" "TransformBendingEnergyPenalty"',
        "Metric0Weight": "1.0",
        "Metric1Weight": "50.0",
    },
    "grid16-bending": {
        "FinalGridSpacingInPhysicalUnits": "16",
        "MaximumNumberOfIterations": "2000",
        "Registration": '"MultiMetricMultiResolutionRegistration"',
        "Metric": '"AdvancedMattesMutualInformation" "TransformBendingEnergyPenalty"',
        "Metric0Weight": "1.0",
        "Metric1Weight": "50.0",
    },
}


def with_overrides(text: str, overrides: dict) -> str:
    lines = text.splitlines()
    for key, value in overrides.items():
        pattern = re.compile(r"^\(" + re.escape(key) + r"\s")
        new = f"({key} {value})"
        for i, line in enumerate(lines):
            if pattern.match(line):
                lines[i] = new
                break
        else:
            lines.append(new)
    return "\n".join(lines) + "\n"


def read_points(path: Path):
    rows = path.read_text().split("\n")
    if rows[0].strip() not in ("point", "index"):
        sys.exit(f"{path}: expected transformix's 'point' header")
    n = int(rows[1])
    pts = [tuple(float(v) for v in r.split()) for r in rows[2 : 2 + n]]
    if len(pts) != n:
        sys.exit(f"{path}: {len(pts)} points, header says {n}")
    return pts


def read_transformix_output(path: Path):
    pts = []
    for line in path.read_text().splitlines():
        m = re.search(r"OutputPoint = \[\s*([-\d.e+]+)\s+([-\d.e+]+)\s+([-\d.e+]+)\s*\]", line)
        if m:
            pts.append(tuple(float(v) for v in m.groups()))
    return pts


def timed(cmd, log: Path):
    """Runs cmd under /usr/bin/time -v; returns (wall s, CPU s, peak RSS MiB)."""
    tlog = log.with_suffix(".time")
    with open(log, "w") as out:
        r = subprocess.run(["/usr/bin/time", "-v", "-o", str(tlog)] + cmd, stdout=out, stderr=subprocess.STDOUT)
    t = tlog.read_text()
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}); see {log}")

    def field(name):
        m = re.search(re.escape(name) + r":\s*(\S+)", t)
        return m.group(1) if m else "0"

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** (len(parts) - 1 - i) for i, p in enumerate(parts))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) / 1024
    return secs, cpu, rss


def tre(out_pts, truth):
    d = sorted(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2) ** 0.5 for a, b in zip(out_pts, truth))
    p95 = d[min(len(d) - 1, int(round(0.95 * (len(d) - 1))))]
    return statistics.fmean(d), p95, d[-1], len(d)


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def run_case(data: Path, work: Path, moving: str, truth_file: str, stages, threads: int, label: str):
    work.mkdir(parents=True, exist_ok=True)
    params = []
    for name, text in stages:
        p = work / f"{name}.txt"
        p.write_text(text)
        params += ["-p", str(p)]
    load_before = load()
    cmd = ["elastix", "-f", str(data / "fixed_ct.nii.gz"), "-m", str(data / moving), "-out", str(work), "-threads", str(threads)] + params
    wall, cpu, rss = timed(cmd, work / "elastix.stdout")
    final = work / f"TransformParameters.{len(stages) - 1}.txt"
    tdir = work / "points"
    tdir.mkdir(exist_ok=True)
    timed(["transformix", "-def", str(data / "target_points.txt"), "-tp", str(final), "-out", str(tdir), "-threads", str(threads)], work / "transformix.stdout")
    out = read_transformix_output(tdir / "outputpoints.txt")
    truth = read_points(data / truth_file)
    if len(out) != len(truth):
        sys.exit(f"{label}: transformix gave {len(out)} points for {len(truth)}")
    mean, p95, mx, n = tre(out, truth)
    # The same points through each intermediate stage, to see what each stage contributes.
    stage_tre = []
    for i in range(len(stages) - 1):
        sdir = work / f"points{i}"
        sdir.mkdir(exist_ok=True)
        timed(["transformix", "-def", str(data / "target_points.txt"), "-tp", str(work / f"TransformParameters.{i}.txt"), "-out", str(sdir), "-threads", str(threads)], sdir / "transformix.stdout")
        stage_tre.append((stages[i][0], tre(read_transformix_output(sdir / "outputpoints.txt"), truth)[0]))
    stages_text = ", ".join(f"after {s} {t:.3f} mm" for s, t in stage_tre)
    print(
        f"{label}: TRE mean {mean:.3f} mm (p95 {p95:.3f}, max {mx:.3f}, {n} points); elastix {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU, peak RSS {rss:.0f} MiB, {threads} threads; load before {load_before}, after {load()}"
        + (f"; {stages_text}" if stages_text else ""),
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder written by `fuseprint bench register --write-phantom`")
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="B-spline variant(s); default: default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rigid", action="store_true", help="also register the rigid-only pair (rigid stage only)")
    ap.add_argument(
        "--issue-pair",
        action="store_true",
        help="also run the deformable pipeline (rigid+affine+B-spline) on the rigid-only pair: issue 5's own benchmark pair",
    )
    ap.add_argument("--no-warped", dest="skip_warped", action="store_true", help="skip the warped pair")
    ap.add_argument("--work", type=Path, default=None, help="where elastix writes (default: a temporary folder)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="elastix-peer-"))
    rigid = (HERE / "rigid.txt").read_text()
    affine = (HERE / "affine.txt").read_text()
    bspline = (HERE / "bspline.txt").read_text()
    print(f"elastix on {a.data} (work folder {work})", flush=True)
    if a.rigid:
        run_case(a.data, work / "rigid-pair", "moving_mr_rigid.nii.gz", "true_moving_points_rigid.txt", [("rigid", rigid)], a.threads, "rigid pair, rigid")
    if a.issue_pair:
        stages = [("rigid", rigid), ("affine", affine), ("bspline", bspline)]
        run_case(a.data, work / "issue-pair", "moving_mr_rigid.nii.gz", "true_moving_points_rigid.txt", stages, a.threads, "issue's pair (rigid motion only), rigid+affine+B-spline [default]")
    for v in [] if a.skip_warped else (a.variant or ["default"]):
        stages = [("rigid", rigid), ("affine", affine), ("bspline", with_overrides(bspline, VARIANTS[v]))]
        run_case(a.data, work / v, "moving_mr.nii.gz", "true_moving_points.txt", stages, a.threads, f"warped pair, rigid+affine+B-spline [{v}: {VARIANTS[v] or 'as committed'}]")


if __name__ == "__main__":
    main()
