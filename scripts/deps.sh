#!/usr/bin/env bash
# Install the Debian packages loa needs. `scripts/deps.sh build` installs only what building and
# running need; `scripts/deps.sh test` adds what the test suite drives for real (PulseAudio null
# sink, ALSA file plugin, icecast2 + ezstream, Chromium, systemd-analyze, audio tools).
set -euo pipefail
mode=${1:-build}
pkgs=(pkg-config libasound2-dev)
if [ "$mode" = test ]; then
  pkgs+=(
    alsa-utils libasound2-plugins        # ALSA file plugin / pulse plugin for headless audio
    pulseaudio pulseaudio-utils          # real-time null sink + parec for timing tests
    sox libsox-fmt-mp3 vorbis-tools flac lame espeak-ng   # test audio fixtures
    icecast2 ezstream                    # a real upstream for relay tests
    sqlite3                              # inspecting the collector DB in tests
    chromium                             # dashboard test, headless
    systemd                              # systemd-analyze verify of the units
    python3-pip
  )
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$mode" = test ]; then
  # The XLSX export is opened by a real spreadsheet reader in the tests.
  python3 -c 'import openpyxl' 2>/dev/null || python3 -m pip install -q openpyxl
fi
