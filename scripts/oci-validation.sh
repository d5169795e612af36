#!/bin/bash
# Runs the OCI runtime-tools validation suite against this runtime and runc, in one run,
# and prints each runtime's count of passing, failing and skipped assertions.
#   sudo scripts/oci-validation.sh [RUNTIME_TOOLS_GIT]   (default: the GitHub repository)
#   OUT=DIR keeps each runtime's TAP output there; RUNTIMES="stratoswarm-oci" runs only ours.
# Go >= 1.21 is needed: when the host has none, golang-1.23-go is installed from
# bookworm-backports through a private apt configuration (a temporary sources list and
# lists directory given on the command line); the host's own apt sources are not changed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-https://github.com/opencontainers/runtime-tools}
work=$(mktemp -d /var/tmp/ss-rtools-XXXXXX)
trap 'rm -rf "$work"' EXIT

gobin=""
for g in /usr/lib/go-1.2[3-9]/bin /usr/lib/go-1.2[1-2]/bin; do [ -x "$g/go" ] && gobin=$g && break; done
if [ -z "$gobin" ]; then
  apt=$work/apt
  mkdir -p "$apt/lists/partial"
  printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-backports main\n' > "$apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::State::Lists=$apt/lists")
  apt-get "${opts[@]}" -q update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" -q -y -t bookworm-backports install golang-1.23-go >/dev/null
  gobin=/usr/lib/go-1.23/bin
fi
export PATH=$gobin:$PATH GOFLAGS=-mod=vendor GOCACHE=$work/gocache

git clone -q "$src" "$work/rt"
cd "$work/rt"
make -s runtimetest validation-executables >/dev/null

# The bundles the suite makes need the runtime's binary by one path: a wrapper with our root.
root=$work/oci-root
cat > "$work/stratoswarm-oci" <<W
#!/bin/sh
exec $here/build/Release/stratoswarm-oci --root $root "\$@"
W
chmod +x "$work/stratoswarm-oci"

count() {  # TAP on stdin -> "ok N, not ok N, skipped N; C of T tests clean (no not ok)"
  awk '/^# test: / {t++; name=$3; next} /^ok .*# [Ss][Kk][Ii][Pp]/ {s++; next} /^ok / {o++} /^not ok / {n++; bad[name]=1}
       END {c=0; for (k in bad) c++; printf "%d ok, %d not ok, %d skipped; %d of %d tests clean\n", o, n, s, t-c, t}'
}
per_test() {  # TAP on stdin -> one line per test: name ok not-ok skipped
  awk '/^# test: / {name=$3; order[++t]=name; next} /^ok .*# [Ss][Kk][Ii][Pp]/ {s[name]++; next} /^ok / {o[name]++} /^not ok / {n[name]++}
       END {for (i=1; i<=t; i++) {k=order[i]; printf "%s %d %d %d\n", k, o[k], n[k], s[k]}}'
}
out_dir=${OUT:-$work}
mkdir -p "$out_dir"
for name in ${RUNTIMES:-runc stratoswarm-oci}; do
  rt=$name
  [ "$name" = stratoswarm-oci ] && rt=$work/stratoswarm-oci
  out=$out_dir/$name.tap
  for t in validation/*/*.t validation/*.t; do
    [ -x "$t" ] || continue
    echo "# test: $(basename "$t" .t)"   # a TAP comment: counts are unchanged
    RUNTIME=$rt timeout 60 "$t" 2>&1 || true
  done > "$out"
  echo "$name: $(count < "$out")"
  per_test < "$out" > "$out_dir/$name.per-test"
done
"$here/build/Release/stratoswarm-oci" --root "$root" server-stop >/dev/null 2>&1 || true
