# shellcheck shell=bash
# Shared set-up for scripts/run, scripts/test and scripts/bench. Source it; do not run it.
# On a Debian machine it finds, or else provides, what the service needs: Rust, a PostgreSQL
# server, a database on it, and Debian packages.
#
#   ensure_rust              cargo on PATH (adds ~/.cargo/bin when it is only there)
#   ensure_postgres          DATABASE_URL_SERVER: a URL of a PostgreSQL server that answers
#   ensure_database NAME     creates NAME there if missing; exports DATABASE_URL pointing at it
#   ensure_apt_packages P... installs the Debian packages that are missing
#   ensure_build_deps        the Debian packages the build links against (OpenSSL, pkg-config)
#
# Every wait and retry below is bounded.

set -euo pipefail

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "scripts/lib.sh is meant to be sourced (. scripts/lib.sh), not run" >&2
  exit 1
fi

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: runs CMD as root: directly when we are root, else through sudo (which may ask
# for a password only when there is a terminal to ask on).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
  else
    die "this step needs root, and there is no sudo: run as root, or do it yourself: $*"
  fi
}

# as_postgres CMD...: runs CMD as the postgres system user (peer auth on the local socket).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo -u postgres "$@"; else sudo -n -u postgres "$@"; fi
  else
    die "this step needs root or sudo to act as user postgres: $*"
  fi
}

# ---------------------------------------------------------------------------------------------
# Rust

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    # rustup installs into ~/.cargo/bin; a non-login shell may not have it on PATH.
    local bin="${CARGO_HOME:-${HOME:-/nonexistent}/.cargo}/bin"
    if [ -x "$bin/cargo" ]; then
      PATH="$bin:$PATH"
      export PATH
    fi
  fi
  command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust first (rustup, https://rustup.rs); the crate needs rustc 1.85 or newer"
  say "Rust: $(cargo --version)"
}

# ---------------------------------------------------------------------------------------------
# Debian packages

APT_UPDATED=${APT_UPDATED:-0}

# ensure_apt_packages PKG...: installs those of PKG that are not installed (one apt-get update
# per run, at most).
ensure_apt_packages() {
  local pkg missing=()
  command -v dpkg >/dev/null 2>&1 ||
    die "not a Debian-based system (no dpkg): install these yourself: $*"
  for pkg in "$@"; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "missing Debian packages (${missing[*]}) and no apt-get to install them"
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get -o DPkg::Lock::Timeout=120 update -qq >&2 ||
      die "apt-get update failed (are you root, or can you sudo?)"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    die "could not install: ${missing[*]}"
}

# ensure_build_deps: what the crate's build links against beyond Rust: OpenSSL (webauthn-rs, for
# staff passkeys), found through pkg-config.
ensure_build_deps() {
  ensure_apt_packages pkg-config libssl-dev
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL URLs

# url_with_db URL DB: URL with its database (path) replaced by DB; ?query kept.
#   postgres://u:p@h:5432/x?sslmode=require  ->  postgres://u:p@h:5432/DB?sslmode=require
#   postgres://h                              ->  postgres://h/DB
url_with_db() {
  local url=$1 db=$2 base query="" scheme rest authority
  base=${url%%\?*}
  [ "$base" != "$url" ] && query="?${url#*\?}"
  scheme=${base%%://*}
  rest=${base#*://}
  authority=${rest%%/*}
  printf '%s://%s/%s%s' "$scheme" "$authority" "$db" "$query"
}

# mask_url URL: URL with any password replaced by ***, for printing.
mask_url() {
  local url=$1 scheme rest authority tail userinfo
  case $url in *://*) ;; *) printf '%s' "$url"; return ;; esac
  scheme=${url%%://*}
  rest=${url#*://}
  authority=${rest%%[/?]*}
  tail=${rest#"$authority"}
  case $authority in
    *@*)
      userinfo=${authority%@*}
      case $userinfo in
        *:*) authority="${userinfo%%:*}:***@${authority##*@}" ;;
      esac ;;
  esac
  printf '%s://%s%s' "$scheme" "$authority" "$tail"
}

# pg_ok URL: true when the server at URL answers `select 1` (no password prompt, 5 s at most).
pg_ok() {
  PGCONNECT_TIMEOUT=5 psql -X -w -Atq "$1" -c 'select 1' </dev/null >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL server

# Prints "VERSION NAME PORT STATUS" for each installed cluster, one a line.
pg_clusters() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2, $3, $4 }'
}

# pg_wait PORT: waits (30 s at most) until a server accepts connections on 127.0.0.1:PORT.
pg_wait() {
  local _
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$1" -t 2 && return 0
    sleep 1
  done
  return 1
}

# Starts the installed clusters named "main" that are down (every down cluster when none is
# named "main"), and waits for each.
pg_start_clusters() {
  local ver name port status only=main
  pg_clusters | awk '$2 == "main" { found = 1 } END { exit !found }' || only=""
  while read -r ver name port status; do
    [ -n "$ver" ] || continue
    [ -z "$only" ] || [ "$name" = "$only" ] || continue
    case $status in
      online*) continue ;;
    esac
    say "starting PostgreSQL cluster $ver/$name (port $port)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 ||
      say "pg_ctlcluster could not start $ver/$name (see /var/log/postgresql/)"
    pg_wait "$port" || say "cluster $ver/$name does not accept connections on port $port yet"
  done < <(pg_clusters)
}

# pg_try_local PORT: tries postgres@127.0.0.1:PORT with no password, then with "postgres";
# sets DATABASE_URL_SERVER to the first that answers.
pg_try_local() {
  local url
  for url in "postgres://postgres@127.0.0.1:$1/postgres" \
             "postgres://postgres:postgres@127.0.0.1:$1/postgres"; do
    if pg_ok "$url"; then
      DATABASE_URL_SERVER=$url
      return 0
    fi
  done
  return 1
}

# The ports of the installed clusters, 5432 first, each once.
pg_ports() {
  { echo 5432; pg_clusters | awk '{ print $3 }'; } | awk 'NF && !seen[$0]++'
}

# ensure_postgres: sets and exports DATABASE_URL_SERVER, the URL (database "postgres" when it can)
# of a PostgreSQL server that answers, trying in order:
#   a. the server of $DATABASE_URL;
#   b. postgres@127.0.0.1:5432, without and with the password "postgres";
#   c. the installed clusters (pg_lsclusters), started;
#   d. Debian's postgresql, installed and started; over TCP Debian asks for a password, so the
#      postgres role gets the password "postgres" (set through the local socket as user postgres).
ensure_postgres() {
  local how="" port url
  if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    ensure_apt_packages postgresql-client
  fi

  # (a) The server of DATABASE_URL. Its own database may not exist yet (scripts/run creates
  #     it), so "postgres" on the same server counts too, and is the URL kept when it answers.
  if [ -n "${DATABASE_URL:-}" ]; then
    case $DATABASE_URL in
      *://*)
        url=$(url_with_db "$DATABASE_URL" postgres)
        if pg_ok "$DATABASE_URL" || pg_ok "$url"; then
          pg_ok "$url" || url=$DATABASE_URL
          DATABASE_URL_SERVER=$url
          how="the server of DATABASE_URL"
        else
          say "DATABASE_URL ($(mask_url "$DATABASE_URL")) does not answer; looking on this machine"
        fi ;;
      *) say "DATABASE_URL is not a postgres:// URL; ignoring it" ;;
    esac
  fi

  # (b) A server already running here.
  if [ -z "$how" ] && pg_try_local 5432; then
    how="found running on 127.0.0.1:5432"
  fi

  # (c) An installed cluster that is not running.
  if [ -z "$how" ] && [ -n "$(pg_clusters)" ]; then
    pg_start_clusters
    for port in $(pg_ports); do
      if pg_try_local "$port"; then
        how="the installed cluster on port $port, started if it was down"
        break
      fi
    done
  fi

  # (d) Install (a no-op when already installed), create a cluster if there is none, start it,
  #     and give the postgres role a password when TCP needs one.
  if [ -z "$how" ]; then
    local done="started"
    if dpkg -s postgresql 2>/dev/null | grep -q '^Status: install ok installed'; then
      say "PostgreSQL is installed but no server lets user postgres in over TCP yet"
    else
      say "no PostgreSQL answers: installing it from Debian's packages"
      ensure_apt_packages postgresql postgresql-client
      done="installed and started"
    fi
    if [ -z "$(pg_clusters)" ]; then
      local ver
      ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
      [ -n "$ver" ] || die "postgresql is installed but no server version is under /usr/lib/postgresql"
      say "creating PostgreSQL cluster $ver/main"
      as_root pg_createcluster "$ver" main >&2
    fi
    pg_start_clusters
    for port in $(pg_ports); do
      pg_isready -q -h 127.0.0.1 -p "$port" -t 2 || continue
      if pg_try_local "$port"; then
        how="$done PostgreSQL on port $port"
        break
      fi
      say "setting the postgres role's password to 'postgres' (cluster on port $port)"
      as_postgres psql -X -q -p "$port" -d postgres \
        -c "ALTER ROLE postgres PASSWORD 'postgres'" </dev/null >&2 || continue
      if pg_try_local "$port"; then
        how="$done PostgreSQL on port $port, and set the postgres role's password"
        break
      fi
    done
  fi

  [ -n "$how" ] ||
    die "no PostgreSQL server answers: start one, or set DATABASE_URL to one that does"
  export DATABASE_URL_SERVER
  say "PostgreSQL: $(mask_url "$DATABASE_URL_SERVER") ($how)"
}

# pg_has_db NAME: true when database NAME exists on DATABASE_URL_SERVER (NAME already checked).
pg_has_db() {
  [ "$(psql -X -w -Atq "$DATABASE_URL_SERVER" </dev/null \
    -c "select 1 from pg_database where datname = '$1'")" = 1 ]
}

# ensure_database NAME: creates database NAME on DATABASE_URL_SERVER if it is missing, and
# exports DATABASE_URL = that server's URL with NAME as its database (query kept).
ensure_database() {
  local name=${1:?usage: ensure_database NAME}
  [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_-]*$ ]] ||
    die "database name '$name': use letters, digits, _ and -"
  [ -n "${DATABASE_URL_SERVER:-}" ] || ensure_postgres
  if ! pg_has_db "$name"; then
    say "creating database $name"
    # A concurrent run may create it between the check and here: check again on failure.
    psql -X -w -q "$DATABASE_URL_SERVER" -c "CREATE DATABASE \"$name\"" </dev/null >&2 ||
      pg_has_db "$name" ||
      die "could not create database $name on $(mask_url "$DATABASE_URL_SERVER")"
  fi
  DATABASE_URL=$(url_with_db "$DATABASE_URL_SERVER" "$name")
  export DATABASE_URL
}
