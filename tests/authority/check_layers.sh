#!/usr/bin/env bash
# Each layer of authority/ includes only itself and the layers below it
# (docs/design.md, "Inside the authority"). Prints every include that
# reaches up, and fails if there is one.
set -euo pipefail
root=${1:-$(dirname "$0")/../..}
cd "$root/authority"

# layer: the folders it may include besides its own and authority/internal/
declare -A below=(
  [store]=""
  [core]="store"
  [fanout]="core store"
  [webhooks]="core store"
  [identity]="core"
  [rpc]="core store fanout webhooks"
)
bad=0
for layer in "${!below[@]}"; do
  allowed="$layer internal ${below[$layer]}"
  while IFS= read -r hit; do
    target=$(sed -E 's|.*#include "authority/([a-z_]+)/.*|\1|' <<<"$hit")
    if [[ " $allowed " != *" $target "* ]]; then
      echo "authority/$hit: $layer/ may not include $target/"
      bad=1
    fi
  done < <(grep -rn '#include "authority/[a-z_]*/' "$layer" || true)
  # The wiring at the top (server.h) is never included from a layer.
  if grep -rln '#include "authority/server.h"' "$layer"; then bad=1; fi
done
exit $bad
