#!/usr/bin/env bash
# Fresh-machine set-up: ffmpeg, a .venv, CPU torch first (no CUDA wheels), then mf2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's ffmpeg" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "setup: ffmpeg/ffprobe are missing; install them (e.g. 'sudo apt-get install ffmpeg') and re-run" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# The pinned CPU build must be in place before anything that depends on torch.
"$VENV/bin/python" -m pip install -q "torch==${MF2_TORCH_VERSION:-2.13.0}"
"$VENV/bin/python" -m pip install -q -e ".[fan,train,test,dev]"
touch "$VENV/.mf2-installed"
echo "setup: ready ($VENV)" >&2
