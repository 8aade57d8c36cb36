#!/usr/bin/env bash
# Install the Debian packages loa needs. `scripts/deps.sh build` installs only what building and
# running need (espeak-ng: the collector reads bulletins sent as text with its Vietnamese voice,
# docs/bulletins.md); `scripts/deps.sh test` adds what the test suite drives for real (PulseAudio null
# sink, ALSA file plugin, icecast2 + ezstream, Chromium and chromedriver, systemd-analyze, audio tools, and
# Debian's own Python modules for opening the exports, and PostgreSQL for the collector's second
# engine).
#
# Only Debian packages: Debian's /usr/bin/python3 refuses `pip install` outside a virtual
# environment (PEP 668, "externally-managed-environment"), so the Python modules the tests use
# come from apt too, and the tests run /usr/bin/python3 by its full path — never whatever
# `python3` comes first on PATH.
set -euo pipefail
mode=${1:-build}
pkgs=(pkg-config libasound2-dev espeak-ng)
if [ "$mode" = test ]; then
  pkgs+=(
    alsa-utils libasound2-plugins        # ALSA file plugin / pulse plugin for headless audio
    pulseaudio pulseaudio-utils          # real-time null sink + parec for timing tests
    sox libsox-fmt-mp3 vorbis-tools flac lame   # test audio fixtures
    icecast2 ezstream                    # a real upstream for relay tests
    sqlite3                              # inspecting the collector DB in tests
    faketime                             # libfaketime: the station's clock stepped under a real binary
    chromium chromium-driver             # the web app in a real browser (WebDriver), headless
    systemd                              # systemd-analyze verify of the units
    python3 python3-openpyxl python3-docx   # the XLSX/DOCX exports opened by real readers
    postgresql                           # the collector on PostgreSQL (scripts/pg.sh starts a cluster)
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
  # The exports are opened by real readers in the tests, with Debian's Python (see the top).
  /usr/bin/python3 -c 'import openpyxl, docx' || {
    echo "deps: /usr/bin/python3 cannot import openpyxl and docx (packages python3-openpyxl, python3-docx)" >&2
    exit 1
  }
fi
