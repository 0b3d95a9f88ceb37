#!/bin/sh
# Writes a wrapper Go module that builds Kubernetes binaries of one release from the Go module
# proxy, then resolves it (`go mod tidy`, which fills go.sum).
#
#   tools/k8s/gen-kubernetes-gomod.sh DIR VERSION PACKAGE...
#   tools/k8s/gen-kubernetes-gomod.sh tools/k8s/v1.30/kubernetes v1.30.14 \
#       k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
#       k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
#
# k8s.io/kubernetes requires every staging module (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0
# and replaces it with ./staging/src/..., which only applies inside its own repository; the
# wrapper replaces each with its published twin v0.Y.Z instead. The list is read from the
# release's own go.mod, so it is right for any release. The release's `go` line becomes the
# wrapper's `godebug default=`: only the main module's godebug applies, and the release was
# written for that Go's defaults.
set -eu
[ $# -ge 3 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
dir=$1 version=$2
shift 2
minor_patch=${version#v1.}
mod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$mod" ] || { echo "the Go module proxy serves no k8s.io/kubernetes@$version" >&2; exit 1; }
go_line=$(sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1/p' "$mod")
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod" | sort -u)

mkdir -p "$dir"
{
	echo "// Wrapper module: builds Kubernetes $version binaries from the Go module proxy."
	echo "// The pinned release is the k8s.io/kubernetes require line; staging modules are replaced by their"
	echo "// published v0.Y.Z twins (regenerate with tools/k8s/gen-kubernetes-gomod.sh when changing the pin)."
	echo "module burstcert.local/$dir"
	echo
	echo "go 1.26.0"
	echo
	echo "godebug default=go$go_line"
	echo
	echo "tool ("
	for p in "$@"; do printf '\t%s\n' "$p"; done
	echo ")"
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	echo "replace ("
	for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "$minor_patch"; done
	echo ")"
} >"$dir/go.mod"
rm -f "$dir/go.sum"
cd "$dir"
# The sample-* staging modules are never imported by a binary; their versions need not exist.
GOFLAGS=-mod=mod go mod tidy
