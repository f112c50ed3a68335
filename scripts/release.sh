#!/usr/bin/env bash
# Releases the collection: sets galaxy.yml's version and turns every changelog fragment into that version's
# section of changelogs/changelog.yaml and CHANGELOG.rst (antsibull-changelog; the fragments are removed).
# Usage: scripts/release.sh 1.2.0   (from the repository root, with the virtualenv of `make venv`)
set -euo pipefail
version=${1:?usage: scripts/release.sh <version, e.g. 1.2.0>}
here=$(cd "$(dirname "$0")/.." && pwd)
collection=${SGLANG_PREP_COLLECTION:-$here/collections/ansible_collections/sglang/prep}
bin=${VENV:-$here/.venv}/bin
export PATH=$bin:$PATH  # antsibull-changelog runs ansible-doc for the new plugins
sed -i -E "s/^version: .*/version: ${version}/" "$collection/galaxy.yml"
cd "$collection"
"$bin/antsibull-changelog" lint
"$bin/antsibull-changelog" release --version "$version"
echo "Released $version: review changelogs/changelog.yaml and CHANGELOG.rst, then commit them with galaxy.yml."
