# Sourced by the scripts: where cargo puts what it builds. Asks cargo (it
# knows CARGO_TARGET_DIR, --config build.target-dir and .cargo/config.toml);
# without cargo metadata, CARGO_TARGET_DIR or ./target.
# Usage: release=$(target_dir)/release
target_dir() {
    local d
    d=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || d=
    echo "${d:-${CARGO_TARGET_DIR:-target}}"
}
