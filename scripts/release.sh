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
# the runtime reports the same version (manifests, bundles, the sglang_prep_info metric)
sed -i -E "s/^__version__ = .*/__version__ = \"${version}\"/" "$collection/plugins/module_utils/sglang_prep/__init__.py"
cd "$collection"
"$bin/antsibull-changelog" lint
"$bin/antsibull-changelog" release --version "$version"
echo "Released $version: review changelogs/changelog.yaml and CHANGELOG.rst, then commit them with galaxy.yml."
