#!/usr/bin/env bash
# `make demo`: xcompile's default job (setup.cfg's [xcompile] section) end to
# end on this machine, with no network and no credentials. A registry on
# 127.0.0.1 stands in for Docker Hub on both sides: it serves the armhf base
# images (made locally from Debian's busybox-static) and receives the results.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${DEMO_REGISTRY_PORT:-5055}"
reg="127.0.0.1:$port"
state="${DEMO_STATE:-/var/tmp/xcompile-demo}"
# `make demo` passes the installed wheel's xcompile; by hand, the development venv's.
xcompile="${XCOMPILE:-.venv/bin/xcompile}"
say() { printf '\n== %s\n' "$*"; }

if ! curl -fsS "http://$reg/v2/" >/dev/null 2>&1; then
    say "starting a registry on $reg (storage in $state)"
    mkdir -p "$state"
    printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp: {addr: %s}\n' \
        "$state" "$reg" >"$state/registry.yml"
    nohup docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
    echo $! >"$state/registry.pid"
    for _ in $(seq 1 50); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
fi

tags=$(sed -n '/^\[xcompile\]/,/^\[/s/^tags *= *//p' setup.cfg)
say "publishing armhf base images $reg/arm32v7/python:{${tags// /,}}"
refs=()
for tag in $tags; do refs+=("$reg/arm32v7/python:$tag"); done
bash ci/make-base-image.sh armhf linux/arm/v7 "${refs[@]}"
for ref in "${refs[@]}"; do docker push -q "$ref" >/dev/null; done
# Drop the local copies so the builds pull their bases, as from Docker Hub.
docker rmi "${refs[@]}" >/dev/null

say "xcompile build (the job in setup.cfg, pointed at $reg), with $("$xcompile" --version) from $xcompile"
start=$(date +%s%N)
"$xcompile" build --base "$reg/arm32v7/python" --repo "$reg/brewblox/rpi-python" --report demo-report.json
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
printf 'xcompile took %d.%01d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))

say "in the registry"
for tag in $tags; do
    printf '%s: ' "$reg/brewblox/rpi-python:$tag"
    curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$reg/v2/brewblox/rpi-python/manifests/$tag" -o /dev/null -w '%{http_code}\n'
done

image="$reg/brewblox/rpi-python:$(echo "$tags" | awk '{print $NF}')"
say "proof: $image, pulled back fresh, runs ARM code under emulation"
docker rmi "$image" >/dev/null
docker pull -q --platform linux/arm/v7 "$image" >/dev/null
printf 'uname -m in the image: '
docker run --rm --platform linux/arm/v7 "$image" uname -m
printf 'qemu inside matches the host: '
inside=$(docker run --rm --platform linux/arm/v7 --entrypoint /usr/bin/qemu-arm-static "$image" --version | head -n 1)
[ "$inside" = "$(qemu-arm-static --version | head -n 1)" ] && echo "yes ($inside)"
echo
echo "The registry keeps running on $reg; stop it with: kill \$(cat $state/registry.pid)"
