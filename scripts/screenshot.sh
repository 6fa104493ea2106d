#!/usr/bin/env bash
# End-to-end run of the desktop window under Xvfb: starts `fuseprint` on the bundled sample
# (CT, then the MR picked in the volume list with xdotool) and on a real CT NIfTI, takes
# screenshots into docs/screenshots/ (≤ 1200 px wide) and prints the app's timing lines
# (start-to-first-frame, load duration, frame intervals while loading vs idle).
#
# Needs: xvfb, imagemagick, xdotool, mesa-vulkan-drivers. Usage: scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --bin fuseprint
BIN="$CARGO_TARGET_DIR/debug/fuseprint"
OUT=docs/screenshots
DATA=../shared/data/registration/mri_dir_porcine_phantom/ct_from_dicom_2x_inplane.nii.gz
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
export DISPLAY=:99
export RUST_LOG="${RUST_LOG:-warn,fuseprint=info}"

Xvfb :99 -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
APP_PID=""
cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
    kill "$XVFB_PID" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1

# Waits (up to $2 seconds) until the app's log ($1) contains $3.
wait_for_log() {
    for _ in $(seq 1 $(($2 * 10))); do
        grep -q "$3" "$1" && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$3' in $1" >&2
    return 1
}

shot() {
    import -window root "/tmp/fuseprint_$1.png"
    convert "/tmp/fuseprint_$1.png" -crop 1500x950+0+0 +repage -resize '1200x>' -colors 200 -strip \
        -define png:compression-level=9 "$OUT/$1.png"
    echo "wrote $OUT/$1.png ($(du -k "$OUT/$1.png" | cut -f1) KiB)"
}

# 1. The sample study, CT then MR.
LOG=/tmp/fuseprint_sample.log
rm -f "$LOG"
FUSEPRINT_FRAME_STATS=1 "$BIN" >"$LOG" 2>&1 &
APP_PID=$!
wait_for_log "$LOG" 60 "sample study: done"
sleep 3
shot sample_ct
xdotool mousemove 120 107 click 1
sleep 3
shot sample_mr
kill "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; APP_PID=""
grep -E "first frame|done in|frames" "$LOG" || true

# 2. The real porcine CT + MR pair (CT from the command line, the MR through FUSEPRINT_OPEN_ALSO):
#    bone threshold through the Segment tab, then a rigid registration run through the Register
#    tab; frame intervals are logged while it runs ("frames loading") and after ("frames idle").
#    Click positions are for the 1500×950 window at the screen's top-left (no window manager).
MR=../shared/data/registration/mri_dir_porcine_phantom/mr_t2_from_dicom.nii.gz
click() { xdotool mousemove "$1" "$2" click 1; sleep "${3:-1}"; }
if [ -f "$DATA" ] && [ -f "$MR" ]; then
    LOG=/tmp/fuseprint_porcine.log
    rm -f "$LOG"
    FUSEPRINT_OPEN_ALSO="$MR" FUSEPRINT_FRAME_STATS=1 "$BIN" "$DATA" >"$LOG" 2>&1 &
    APP_PID=$!
    wait_for_log "$LOG" 60 "first frame"
    sleep 2
    shot loading_progress
    for _ in $(seq 1 1200); do
        [ "$(grep -c "done in" "$LOG")" -ge 2 ] && break
        sleep 0.1
    done
    sleep 3
    shot porcine_ct
    click 1457 37            # Segment tab
    click 1201 152           # Bone preset: live preview
    shot porcine_preview
    click 1232 267 8         # Apply threshold (a job)
    shot porcine_workflow
    click 1383 37            # Register tab
    shot porcine_register_tab
    click 1240 140 2         # Start registration
    shot porcine_register_start
    click 1240 155 1         # Run registration (a job: frames are logged while it runs)
    wait_for_log "$LOG" 300 "registration: done in" || true
    sleep 5
    shot porcine_registered
    kill "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; APP_PID=""
    grep -E "first frame|done in|frames|warn" "$LOG" || true
else
    echo "skipping the real CT + MR: $DATA or $MR not found"
fi
