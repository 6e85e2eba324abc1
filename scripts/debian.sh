# Sourced by the set-up scripts that install Debian packages. Set WHAT (who is speaking) and NEEDS (what a person
# without root would install by hand) first; APT_OPTIONS may add options to apt-get install.
log() { echo "$WHAT: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "'$*' needs root: run it as root, or install $NEEDS yourself"; exit 1; fi
}
install_packages() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${APT_OPTIONS:-} "$@" >&2 \
    || { as_root apt-get update -qq >&2 \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${APT_OPTIONS:-} "$@" >&2; }
}
