#!/usr/bin/env bash
# Runs each cargo-fuzz target briefly (default 30 s each) from seeds taken from ../shared/data.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); skips with a note
# otherwise. CI always runs the stable stand-in: `cargo test --test io_nifti mutated`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz_smoke: nightly toolchain or cargo-fuzz missing; skipping (stable mutation test still runs in CI)"
    exit 0
fi
DATA="$(pwd)/../shared/data"
seed_corpus() {
    local target="$1"; shift
    local dir="fuzz/corpus/$target"
    mkdir -p "$dir"
    if [ -d "$DATA" ]; then
        for f in "$@"; do
            # Keep seeds small: libFuzzer's default max_len is 4 KiB.
            [ -f "$f" ] && head -c 65536 "$f" > "$dir/$(basename "$f")"
        done
    fi
}
seed_corpus nifti_reader "$DATA/totalsegmentator/example_seg_fast_per_class/aorta.nii.gz" \
    "$DATA/dicom/dcm_qa_siemens_mosaic_orientation/Ref_dcm2niix/ax_desc_35sl_7.nii"
seed_corpus dicom_reader $(find "$DATA/dicom/pydicom-testfiles" -name '*.dcm' -size -64k 2>/dev/null | head -20)
for target in nifti_reader dicom_reader; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    # FUZZ_FLAGS="--dev -s none" builds without AddressSanitizer in minutes instead of half an hour.
    (cd fuzz && cargo +nightly fuzz run ${FUZZ_FLAGS:-} "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=4096)
done
echo "fuzz_smoke: no crashes"
