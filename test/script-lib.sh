# Shared by test/pack.sh and test/sanitize.sh (sourced, not run). Expects
# $label (for messages) and $work (a temporary folder) to be set.

fail() {
  echo "$label: $*" >&2
  exit 1
}

begin() {
  step=$1
  echo "--- $step"
}

# Runs a command with its output in a log; shows the log if it fails.
quiet() {
  local log="$work/log.$RANDOM"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "failed: $*"
  fi
}

# copy_checkout FROM TO: what a clone of FROM holds, plus work not yet
# committed (no ignored files), with FROM's node_modules linked in.
copy_checkout() {
  local from=$1 to=$2
  mkdir -p "$to"
  if git -C "$from" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$from" && git ls-files -z --cached --others --exclude-standard) |
      while IFS= read -r -d '' f; do [ -e "$from/$f" ] && printf '%s\0' "$f"; done |
      tar -C "$from" --null -T - -cf - | tar -C "$to" -xf -
  else
    tar -C "$from" --exclude=./node_modules --exclude=./build --exclude='./build-*' \
      --exclude=./prebuilds --exclude=./dist --exclude='./*.tgz' --exclude=./.git -cf - . |
      tar -C "$to" -xf -
  fi
  ln -s "$from/node_modules" "$to/node_modules"
}
