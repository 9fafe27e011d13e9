# Shared set-up for scripts/run and scripts/test. Source it; do not run it.
# Finds or provides what the service needs on a Debian machine: Rust, PostgreSQL, packages.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
}

APT_UPDATED=0
# ensure_apt_packages PKG...: installs the Debian packages that are missing.
ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq >&2
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

pg_ok() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Replaces the database name in a postgres URL, keeping any ?query.
url_with_db() {
  local url=$1 db=$2 base query=""
  base=${url%%\?*}
  [ "$base" != "$url" ] && query="?${url#*\?}"
  case "${base#*://}" in
    */*) base=${base%/*} ;;
  esac
  printf '%s/%s%s' "$base" "$db" "$query"
}

start_installed_cluster() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  local ver name
  read -r ver name _ < <(pg_lsclusters --no-header 2>/dev/null | head -n 1) || return 1
  [ -n "${ver:-}" ] || return 1
  say "starting PostgreSQL cluster $ver/$name"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 2>/dev/null || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  return 1
}

# Sets DATABASE_SERVER_URL to a PostgreSQL server that answers, starting or installing one if needed.
ensure_postgres() {
  command -v psql >/dev/null 2>&1 || ensure_apt_packages postgresql-client
  local candidates=()
  [ -n "${DATABASE_URL:-}" ] && candidates+=("$(url_with_db "$DATABASE_URL" postgres)")
  candidates+=("postgres://postgres@127.0.0.1:5432/postgres" "postgres://postgres:postgres@127.0.0.1:5432/postgres")
  local attempt url
  for attempt in found started installed; do
    for url in "${candidates[@]}"; do
      if pg_ok "$url"; then
        DATABASE_SERVER_URL=$url
        say "PostgreSQL: using the server at ${url%%@*}@${url#*@} ($attempt)"
        return 0
      fi
    done
    case $attempt in
      found) start_installed_cluster || true ;;
      started)
        say "PostgreSQL not found: installing it from Debian's packages"
        ensure_apt_packages postgresql postgresql-client
        start_installed_cluster || die "PostgreSQL was installed but does not start"
        # Debian's default: peer auth on the socket, passwords over TCP. Give postgres one.
        as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2 ;;
    esac
  done
  die "no PostgreSQL server answers: set DATABASE_URL to one that does"
}

# ensure_database NAME: creates NAME if missing; exports DATABASE_URL pointing at it.
ensure_database() {
  local name=$1
  if [ "$(psql "$DATABASE_SERVER_URL" -Atqc "select 1 from pg_database where datname = '$name'")" != 1 ]; then
    say "creating database $name"
    psql "$DATABASE_SERVER_URL" -qc "CREATE DATABASE \"$name\"" >&2
  fi
  DATABASE_URL=$(url_with_db "$DATABASE_SERVER_URL" "$name")
  export DATABASE_URL
}
