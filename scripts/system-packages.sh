#!/usr/bin/env bash
# Installs the system packages idhub's build needs, when they are missing:
#   pkg-config, libxmlsec1-dev (SAML signatures via samael/xmlsec), libclang-dev (bindgen).
# Uses apt-get as root, or sudo when it needs no password; otherwise says exactly what to run.
# Sourced by run.sh and test.sh.

idhub_missing_packages() {
  local missing=()
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  if ! pkg-config --exists xmlsec1 2>/dev/null; then missing+=(libxmlsec1-dev); fi
  if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'install ok installed'; then
    missing+=(libclang-dev)
  fi
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  echo "${missing[@]}"
}

idhub_ensure_system_packages() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust (https://rustup.rs) and run this again." >&2
    exit 1
  fi
  local missing
  missing=$(idhub_missing_packages)
  [ -z "$missing" ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing system packages: $missing (Debian names); install their equivalents and run this again." >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      echo "error: missing system packages: $missing" >&2
      echo "install them with:  sudo apt-get update && sudo apt-get install -y $missing" >&2
      exit 1
    fi
  fi
  echo "installing system packages: $missing" >&2
  # shellcheck disable=SC2086
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >&2 || {
    echo "error: could not install: $missing" >&2
    echo "install them with:  sudo apt-get update && sudo apt-get install -y $missing" >&2
    exit 1
  }
}
