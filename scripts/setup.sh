#!/usr/bin/env bash
# Installs every system dependency of mone from Debian packages. Idempotent:
# when everything is already installed it returns without touching apt.
# Run as root (CI and the development machines are root); as another user it
# uses sudo when available.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libboost-program-options-dev
  googletest libgtest-dev
  libopenblas-dev libopenblas-openmp-dev
  libpng-dev libturbojpeg0-dev
  dataset-fashion-mnist
  python3-torch python3-torchvision python3-h5py python3-numpy python3-matplotlib python3-pil
  # The local Slurm cluster (scripts/slurm-local.sh, the slurm tests);
  # srun --mpi=pmix loads libpmix2 at run time.
  slurm-wlm munge libpmix2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

echo "setup: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
