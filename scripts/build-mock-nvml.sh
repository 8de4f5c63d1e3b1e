#!/usr/bin/env bash
# build-mock-nvml.sh: builds the mock NVML library (tests/mock_nvml/mock_nvml.c)
# so a machine without a GPU can run a node that sees GPUs:
#
#   scripts/build-mock-nvml.sh            # prints the library's path
#   GSP_MOCK_NVML=tests/mock_nvml/eight-h100.txt \
#     gsp node --nvml-library target/mock-nvml/libnvidia-ml-mock.so --exec
#
# The file named by GSP_MOCK_NVML describes the devices and is read anew on
# every NVML call, so editing it while the node runs adds, loses or loads
# devices. Needs a C compiler (`cc`, or $CC). Exit 0 built, 2 no compiler or
# the build failed.
set -euo pipefail
cd "$(dirname "$0")/.."
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null; then
  echo "build-mock-nvml.sh: no C compiler ($cc); install gcc or set CC" >&2
  exit 2
fi
mkdir -p target/mock-nvml
out=target/mock-nvml/libnvidia-ml-mock.so
if ! "$cc" -shared -fPIC -O1 -Wall -Wextra -Werror -o "$out.tmp" tests/mock_nvml/mock_nvml.c; then
  echo "build-mock-nvml.sh: $cc failed on tests/mock_nvml/mock_nvml.c" >&2
  exit 2
fi
mv "$out.tmp" "$out"
echo "$out"
